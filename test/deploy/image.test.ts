// The Dockerfile and the systemd unit, checked without a Docker engine or a running
// systemd: what the image copies exists and is in the build context, the production
// build holds the CLI and no tests, the image's config, ports, volume and health check
// agree, the health check command works against a real edge; the unit verifies and is
// hardened.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { startEdge, type Edge } from '../helpers/edge.js';
import { freePort, removeDir, run, tempDir } from '../helpers/proc.js';
import { ROOT, readText } from './kustomize.js';

interface Instruction {
  readonly op: string;
  readonly args: string;
}

/** Dockerfile instructions, continuation lines joined, comments dropped. */
function instructions(text: string): Instruction[] {
  return text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const [op = '', ...rest] = l.split(/\s+/);
      return { op: op.toUpperCase(), args: rest.join(' ') };
    });
}

const execForm = (args: string): string[] => JSON.parse(args) as string[];
/** KEY=VALUE pairs of ENV and LABEL, values optionally quoted. */
const pairs = (args: string): Record<string, string> => Object.fromEntries([...args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)].map(([, k = '', v = '']) => [k, v.replace(/^"|"$/g, '')]));
const portOf = (addr: string): number => Number(addr.slice(addr.lastIndexOf(':') + 1));

const dockerfile = instructions(readText(path.join(ROOT, 'Dockerfile')));
const runtime = dockerfile.slice(dockerfile.map((i) => i.op).lastIndexOf('FROM'));
const all = (op: string, from = runtime): Instruction[] => from.filter((i) => i.op === op);
const one = (op: string): Instruction => {
  const found = all(op);
  assert.equal(found.length, 1, `one ${op} in the runtime stage`);
  return found[0] as Instruction;
};
const imageEnv = Object.assign({}, ...all('ENV').map((i) => pairs(i.args))) as Record<string, string>;

describe('Dockerfile', () => {
  let work: string;
  before(() => {
    work = tempDir('re-deploy-image-');
  });
  after(() => removeDir(work));

  test('every COPY source exists and is in the build context; test/ is not', () => {
    const ignored = readText(path.join(ROOT, '.dockerignore')).split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
    const isIgnored = (src: string): boolean => ignored.some((p) => (p.startsWith('*') ? src.endsWith(p.slice(1)) : src === p || src.startsWith(`${p}/`)));
    assert.ok(isIgnored('test') && isIgnored('bench') && isIgnored('node_modules'), 'tests, benchmarks and local modules stay out of the context');
    const copies = all('COPY', dockerfile).filter((i) => !i.args.startsWith('--from'));
    assert.ok(copies.length >= 4);
    for (const c of copies) {
      for (const src of c.args.split(/\s+/).slice(0, -1)) {
        assert.ok(existsSync(path.join(ROOT, src)), `COPY ${src} exists`);
        assert.ok(!isIgnored(src), `COPY ${src} is not in .dockerignore`);
      }
    }
  });

  test('the production build (tsconfig.build.json) holds the CLI the image runs, and no tests', async () => {
    const build = all('RUN', dockerfile).map((i) => i.args).find((a) => a.includes('npm run'));
    assert.match(build ?? '', /npm run build:prod/);
    const pkg = JSON.parse(readText(path.join(ROOT, 'package.json'))) as { scripts: Record<string, string> };
    assert.match(pkg.scripts['build:prod'] ?? '', /tsc -p tsconfig\.build\.json/);
    const out = path.join(work, 'dist');
    const tsc = await run(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.build.json'), '--outDir', out], { cwd: ROOT });
    assert.equal(tsc.code, 0, tsc.stdout + tsc.stderr);
    assert.deepEqual(readdirSync(out), ['src'], 'src/ alone: no test/, no bench/');
    const copied = all('COPY').find((i) => i.args.includes('/app/dist/src'));
    assert.ok(copied, 'the runtime stage copies dist/src');
    const cli = /from '\.\.\/(dist\/src\/[^']+)'/.exec(readText(path.join(ROOT, 'bin/registry-edge.js')))?.[1];
    assert.ok(cli && existsSync(path.join(out, '..', cli)), `bin/registry-edge.js imports ${cli}, which the build made`);
  });

  test('the command, ports, volume, user and labels agree with the config the image ships', () => {
    const command = [...execForm(one('ENTRYPOINT').args), ...execForm(one('CMD').args)];
    assert.deepEqual(command.slice(0, 4), ['node', 'bin/registry-edge.js', 'serve', '--config']);
    const configFile = path.join(ROOT, command[4] ?? '');
    assert.ok(existsSync(configFile), `${command[4]} is copied into the image`);
    const config = loadConfig({ file: configFile, env: imageEnv });
    assert.deepEqual(one('EXPOSE').args.split(/\s+/).map(Number), [portOf(config.http.addr), portOf(config.admin.addr)]);
    assert.match(config.admin.addr, /^0\.0\.0\.0:/, 'the admin port answers from outside the container');
    assert.deepEqual(execForm(one('VOLUME').args), [config.cache.dir]);
    const user = one('USER').args.split(':')[0];
    assert.match(user ?? '', /^[1-9]\d*$/, 'a numeric user other than root, which runAsNonRoot can check');
    const labels = Object.assign({}, ...all('LABEL').map((i) => pairs(i.args))) as Record<string, string>;
    for (const k of ['title', 'description', 'licenses', 'version', 'revision', 'created']) assert.ok(`org.opencontainers.image.${k}` in labels, `label org.opencontainers.image.${k}`);
    assert.equal(labels['org.opencontainers.image.licenses'], (JSON.parse(readText(path.join(ROOT, 'package.json'))) as { license: string }).license);
    const healthcheck = one('HEALTHCHECK').args;
    assert.match(healthcheck, new RegExp(`http://127\\.0\\.0\\.1:${portOf(config.admin.addr)}/healthz`), 'the health check asks the admin port the config names');
  });

  describe('the HEALTHCHECK command (node, no curl)', () => {
    let edge: Edge;
    before(async () => {
      edge = await startEdge({ workDir: work, upstreams: [`http://127.0.0.1:${await freePort()}`] });
    });
    after(() => edge?.stop());

    const check = (port: string): Promise<number | null> => {
      const cmd = execForm(one('HEALTHCHECK').args.replace(/^.*?CMD\s+/, ''));
      assert.equal(cmd[0], 'node');
      const script = (cmd[2] ?? '').replace(/127\.0\.0\.1:\d+/, `127.0.0.1:${port}`);
      return run(process.execPath, [cmd[1] ?? '', script], { timeoutMs: 10_000 }).then((r) => r.code);
    };

    test('exits 0 against a running edge\'s admin listener, 1 when nothing answers', async () => {
      assert.equal(await check(new URL(edge.adminUrl).port), 0);
      assert.equal(await check(String(await freePort())), 1);
    });
  });
});

describe('deploy/systemd/registry-edge.service', () => {
  const unitFile = path.join(ROOT, 'deploy/systemd/registry-edge.service');
  const directives = new Map<string, string[]>();
  for (const line of readText(unitFile).split('\n')) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (m?.[1]) directives.set(m[1], [...(directives.get(m[1]) ?? []), m[2] ?? '']);
  }
  const value = (k: string): string => (directives.get(k) ?? []).join(' ');

  test('systemd-analyze verifies it, and rates its exposure below 2 (of 10)', async () => {
    const verify = await run('systemd-analyze', ['verify', unitFile]);
    assert.equal(verify.code, 0, verify.stderr);
    const security = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', unitFile]);
    const level = /Overall exposure level for registry-edge\.service: ([\d.]+)/.exec(security.stdout)?.[1];
    assert.ok(level !== undefined && Number(level) < 2, `exposure ${level}`);
  });

  test('the descriptor limit, hardening, a writable cache alone, reload by SIGHUP, a stop timeout above the drain', () => {
    assert.ok(Number(value('LimitNOFILE')) >= 65_536);
    for (const [k, v] of [['ProtectSystem', 'strict'], ['NoNewPrivileges', 'true'], ['PrivateTmp', 'true'], ['ProtectHome', 'true'], ['PrivateDevices', 'true']]) assert.equal(value(k ?? ''), v, k);
    const env = pairs(value('Environment'));
    const config = loadConfig({ env });
    assert.equal(value('ReadWritePaths'), config.cache.dir, 'the cache is the one writable path');
    assert.equal(`/var/lib/${value('StateDirectory')}`, config.cache.dir);
    assert.match(value('ExecReload'), /kill -HUP \$MAINPID$/);
    assert.ok(Number(value('TimeoutStopSec')) > config.http.shutdown_timeout + 2, 'systemd waits for the drain and the aborted fills');
    assert.equal(value('RestartPreventExitStatus'), '2', 'a configuration error is not restarted in a loop');
  });
});
