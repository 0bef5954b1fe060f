// The Authorizer in token mode says who the client is (the token's subject) and, at debug
// level, which check refused a token: a claim (exp, nbf, aud, iss, access) or the signature.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Authorizer } from '../../src/auth/authorizer.js';
import { TokenVerifier } from '../../src/auth/token-verifier.js';
import { createLogger } from '../../src/log/logger.js';
import { RegistryError } from '../../src/oci/errors.js';
import { removeDir, tempDir } from '../helpers/proc.js';
import { startTokenService, type TokenService } from '../helpers/token-service.js';

const repo = 'team-a/app';
const base = 'https://edge.example';

describe('Authorizer: the subject, and why a token was refused', () => {
  let ts: TokenService;
  let dir: string;
  let logFile: string;
  let authorizer: Authorizer;
  const sec = (): number => Math.floor(Date.now() / 1000);

  before(async () => {
    ts = await startTokenService();
    dir = tempDir('re-authz-');
    logFile = path.join(dir, 'edge.log');
    const verifier = new TokenVerifier({ issuer: ts.issuer, service: ts.service, rootCertBundlePem: ts.rootCertPem });
    authorizer = new Authorizer('token', {
      token: { realm: (b) => `${b}/token`, service: ts.service, verifier },
      checkTtlMs: 1000,
      log: createLogger({ level: 'debug', sync: true, dest: logFile }),
    });
  });
  after(async () => {
    await ts.stop();
    removeDir(dir);
  });

  const lastLine = (): { msg: string; check: string; reason?: string; repository?: string; subject?: string } => {
    const lines = fs.readFileSync(logFile, 'utf8').trim().split('\n');
    return JSON.parse(lines[lines.length - 1] as string) as ReturnType<typeof lastLine>;
  };
  const pull = (token: string): Promise<string | undefined> => authorizer.pull(repo, `Bearer ${token}`, base, async () => undefined);
  const pullAccess = [{ type: 'repository', name: repo, actions: ['pull'] }];

  test('a verified token resolves with its subject', async () => {
    assert.equal(await pull(ts.issue({ subject: 'alice', access: pullAccess })), 'alice');
    assert.equal(await authorizer.base(`Bearer ${ts.issue({ subject: 'bob' })}`, base), 'bob');
  });

  const refusals: Array<[string, () => string, string]> = [
    ['exp', () => ts.issue({ access: pullAccess, claims: { exp: sec() - 3600, nbf: sec() - 7200 } }), 'exp'],
    ['nbf', () => ts.issue({ access: pullAccess, claims: { nbf: sec() + 3600, exp: sec() + 7200 } }), 'nbf'],
    ['aud', () => ts.issue({ access: pullAccess, claims: { aud: 'another-service' } }), 'aud'],
    ['iss', () => ts.issue({ access: pullAccess, claims: { iss: 'someone-else' } }), 'iss'],
    ['signature', () => ts.issue({ access: pullAccess, tamper: 'signature' }), 'signature'],
    ['access', () => ts.issue({ subject: 'carol', access: [{ type: 'repository', name: 'team-b/other', actions: ['pull'] }] }), 'access'],
  ];
  for (const [name, token, check] of refusals) {
    test(`refused for ${name}: a 401, and a debug line naming the check`, async () => {
      await assert.rejects(pull(token()), (err: unknown) => err instanceof RegistryError && err.status === 401);
      const line = lastLine();
      assert.equal(line.check, check);
      assert.match(line.msg, /^token refused/);
      assert.equal(line.repository, repo);
      if (check === 'access') assert.equal(line.subject, 'carol');
      else assert.ok(line.reason, 'the verifier\'s reason is in the line');
    });
  }
});
