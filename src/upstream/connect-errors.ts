/** How undici and the socket layer say an upstream request failed before any answer. */

/** The instance took longer than upstream.headers_timeout to answer. */
export function isHeadersTimeout(err: unknown): boolean {
  return (err as { code?: string }).code === 'UND_ERR_HEADERS_TIMEOUT';
}

/** A connection closed under a request before any answer came. */
export function isResetConnection(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' || code === 'EPIPE';
}

/** Errors where the request never reached the upstream application, so trying another instance is safe. */
export function isConnectError(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ECONNREFUSED' || code === 'ECONNRESET' || code === 'EHOSTUNREACH' || code === 'ENETUNREACH'
    || code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_SOCKET'
    || code === 'EPIPE';
}
