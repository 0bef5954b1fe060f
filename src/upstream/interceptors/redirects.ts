/**
 * Redirects to object storage, followed when the exchange asks for it, up to
 * upstream.max_redirects hops. Object storage signs its URLs: the registry's
 * Authorization goes only to the origin that issued it.
 */
import type { Step } from './exchange.js';

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

export function followRedirects(maxRedirects: number): Step {
  return (next) => async (exchange) => {
    let res = await next(exchange);
    if (!exchange.followRedirects) return res;
    let base = new URL(exchange.path, exchange.origin);
    let headers = exchange.headers;
    for (let hops = 0; REDIRECTS.has(res.statusCode) && hops < maxRedirects; hops += 1) {
      const location = res.headers.location;
      if (typeof location !== 'string') break;
      await res.body.dump();
      const target = new URL(location, base);
      if (target.origin !== base.origin) {
        const { authorization: _dropped, ...anonymous } = headers;
        headers = anonymous;
      }
      res = await next({ ...exchange, origin: target.origin, path: target.pathname + target.search, headers, body: undefined });
      base = target;
    }
    return res;
  };
}
