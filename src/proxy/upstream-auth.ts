import type { UpstreamRequest } from '../upstream/client.js';

export type AuthMode = 'public' | 'passthrough';

/**
 * Whose credentials a request to the upstream carries: the edge's own in public mode,
 * the client's in passthrough mode (so the upstream decides for the client).
 */
export function upstreamAuth(mode: AuthMode, scope: string, clientAuthorization: string | undefined): UpstreamRequest['auth'] {
  if (mode === 'public') return { kind: 'edge', scope };
  return clientAuthorization ? { kind: 'client', header: clientAuthorization } : undefined;
}

export const pullScope = (name: string): string => `repository:${name}:pull`;
