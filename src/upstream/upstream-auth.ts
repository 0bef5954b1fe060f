import type { AuthMode } from '../auth/authorizer.js';
import type { UpstreamAuth } from './client.js';

/**
 * Whose credentials a request to the upstream carries: the edge's own in public mode,
 * the client's otherwise (so the upstream decides for the client, as it would without the edge).
 */
export function upstreamAuth(mode: AuthMode, scope: string, clientAuthorization: string | undefined): UpstreamAuth {
  if (mode === 'public') return { kind: 'edge', scope };
  return asClient(clientAuthorization);
}

/** The client's own Authorization, forwarded as it is (pushes, access checks); none when it sent none. */
export function asClient(authorization: string | undefined): UpstreamAuth {
  return authorization ? { kind: 'client', header: authorization } : undefined;
}

export const pullScope = (name: string): string => `repository:${name}:pull`;
