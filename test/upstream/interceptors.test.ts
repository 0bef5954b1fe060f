import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { Agent, type Dispatcher } from 'undici';
import { createLogger } from '../../src/log/logger.js';
import { bearerChallenge } from '../../src/upstream/interceptors/bearer-challenge.js';
import { compose, type Exchange, type Send } from '../../src/upstream/interceptors/exchange.js';
import { followRedirects } from '../../src/upstream/interceptors/redirects.js';
import { resetRetry } from '../../src/upstream/interceptors/reset-retry.js';
import { TokenCache } from '../../src/upstream/tokens.js';

const silent = createLogger({ level: 'silent', sync: true });
const agent = new Agent({ keepAliveTimeout: 30_000 });
const servers: Server[] = [];
after(async () => {
  await agent.close();
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A real local HTTP server; resolves to its origin. */
async function serve(listener: RequestListener): Promise<string> {
  const server = createServer(listener);
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const send: Send = ({ origin, path, method, headers, body, signal }) =>
  agent.request({ origin, path, method: method as Dispatcher.HttpMethod, headers, body: body ?? null, signal });

function exchange(origin: string, path: string, extra: Partial<Exchange> = {}): Exchange {
  return { origin, path, method: 'GET', headers: {}, ...extra };
}

describe('redirects', () => {
  test('a redirect to another origin goes without the registry Authorization; the same origin keeps it', async () => {
    const seen: Array<{ url: string | undefined; headers: IncomingHttpHeaders }> = [];
    const storage = await serve((req, res) => {
      seen.push({ url: req.url, headers: req.headers });
      res.end('blob');
    });
    const registry = await serve((req, res) => {
      seen.push({ url: req.url, headers: req.headers });
      if (req.url === '/first') res.writeHead(302, { location: '/second' }).end();
      else res.writeHead(307, { location: `${storage}/signed?x=1` }).end();
    });
    const res = await compose(send, followRedirects(5))(exchange(registry, '/first', { headers: { authorization: 'Bearer t' }, followRedirects: true }));
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'blob');
    assert.deepEqual(seen.map((s) => [s.url, s.headers.authorization]), [['/first', 'Bearer t'], ['/second', 'Bearer t'], ['/signed?x=1', undefined]]);
  });

  test('hops stop at max_redirects, and nothing is followed unless asked', async () => {
    let hits = 0;
    const registry = await serve((_req, res) => {
      hits += 1;
      res.writeHead(302, { location: '/loop' }).end();
    });
    const res = await compose(send, followRedirects(2))(exchange(registry, '/loop', { followRedirects: true }));
    assert.equal(res.statusCode, 302);
    await res.body.dump();
    assert.equal(hits, 3);
    const unfollowed = await compose(send, followRedirects(2))(exchange(registry, '/loop'));
    assert.equal(unfollowed.statusCode, 302);
    await unfollowed.body.dump();
    assert.equal(hits, 4);
  });
});

describe('resetRetry', () => {
  test('a GET whose connection closes before any answer is sent once more; a PUT is not', async () => {
    let hits = 0;
    const origin = await serve((req, res) => {
      hits += 1;
      if (hits % 2 === 1) req.socket.destroy();
      else res.end('ok');
    });
    const res = await compose(send, resetRetry)(exchange(origin, '/v2/'));
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'ok');
    assert.equal(hits, 2);
    await assert.rejects(compose(send, resetRetry)(exchange(origin, '/v2/', { method: 'PUT' })));
    assert.equal(hits, 3);
  });
});

describe('bearerChallenge', () => {
  test('a 401 is answered with a token from the realm and sent once more; the token is reused', async () => {
    let tokenFetches = 0;
    const realm = await serve((_req, res) => {
      tokenFetches += 1;
      res.setHeader('content-type', 'application/json').end(JSON.stringify({ token: 't1', expires_in: 300 }));
    });
    const authorizations: Array<string | undefined> = [];
    const registry = await serve((req, res) => {
      authorizations.push(req.headers.authorization);
      if (req.headers.authorization === 'Bearer t1') {
        res.end('manifest');
        return;
      }
      req.resume();
      res.writeHead(401, { 'www-authenticate': `Bearer realm="${realm}/token",service="registry",scope="repository:a:pull"` }).end('{}');
    });
    const tokens = new TokenCache({ allowedHosts: ['127.0.0.1'], credentials: undefined, dispatcher: agent });
    const edge = compose(send, bearerChallenge({ tokens: () => tokens, credentials: undefined, log: silent }));

    const first = await edge(exchange(registry, '/v2/a/manifests/1', { edgeScope: 'repository:a:pull' }));
    assert.equal(first.statusCode, 200);
    assert.equal(await first.body.text(), 'manifest');
    const second = await edge(exchange(registry, '/v2/a/manifests/1', { edgeScope: 'repository:a:pull' }));
    assert.equal(second.statusCode, 200);
    await second.body.dump();
    assert.deepEqual(authorizations, [undefined, 'Bearer t1', 'Bearer t1']);
    assert.equal(tokenFetches, 1);

    // Without the edge's scope (anonymous or the client's credentials), or with a streamed body, the 401 is the answer.
    const anonymous = await edge(exchange(registry, '/v2/a/manifests/1'));
    assert.equal(anonymous.statusCode, 401);
    await anonymous.body.dump();
    const fresh = compose(send, bearerChallenge({
      tokens: () => new TokenCache({ allowedHosts: ['127.0.0.1'], credentials: undefined, dispatcher: agent }),
      credentials: undefined,
      log: silent,
    }));
    const upload = await fresh(exchange(registry, '/v2/a/blobs/uploads/', { method: 'POST', edgeScope: 'repository:a:push', body: Readable.from([Buffer.from('x')]) }));
    assert.equal(upload.statusCode, 401);
    await upload.body.dump();
    assert.equal(tokenFetches, 1);
  });
});
