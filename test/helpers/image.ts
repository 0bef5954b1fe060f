// Builds real OCI images from random data (nothing shipped, nothing pulled
// from the internet) and moves them with skopeo.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as zlib from 'node:zlib';
import { httpRequest, run, which, type RunResult } from './proc.js';

export const SKOPEO_INSTALL_HINT = 'apt-get install -y skopeo';

export const MEDIA_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const CHUNK = 1024 * 1024;

export interface LayerInfo {
  /** sha256:<hex> of the compressed blob. */
  digest: string;
  /** Compressed blob size. */
  size: number;
  /** sha256 of the uncompressed tar (rootfs.diff_ids entry). */
  diffId: string;
  uncompressedSize: number;
  /** Where the blob lives on disk. */
  path: string;
}

export interface ImageInfo {
  layoutDir: string;
  tag: string;
  manifestDigest: string;
  manifestBytes: Buffer;
  configDigest: string;
  configBytes: Buffer;
  layers: LayerInfo[];
}

export function sha256Hex(data: Buffer | string): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

export function sha256Digest(data: Buffer | string): string {
  return `sha256:${sha256Hex(data)}`;
}

export function hexOf(digest: string): string {
  const m = /^sha256:([a-f0-9]{64})$/.exec(digest);
  if (!m?.[1]) throw new Error(`not a sha256 digest: ${digest}`);
  return m[1];
}

/** Pass-through stream that hashes and counts what flows through it. */
class HashTap extends Transform {
  private readonly hash = crypto.createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    cb(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

export async function sha256File(file: string): Promise<string> {
  const hash = crypto.createHash('sha256');
  for await (const chunk of fs.createReadStream(file, { highWaterMark: CHUNK }) as AsyncIterable<Buffer>) {
    hash.update(chunk);
  }
  return `sha256:${hash.digest('hex')}`;
}

function* randomChunks(size: number): Generator<Buffer> {
  for (let left = size; left > 0; left -= CHUNK) yield crypto.randomBytes(Math.min(CHUNK, left));
}

/** Streams `size` random bytes to `file`; returns its sha256 digest. */
export async function randomFile(file: string, size: number): Promise<string> {
  const tap = new HashTap();
  await pipeline(Readable.from(randomChunks(size)), tap, fs.createWriteStream(file));
  return tap.digest();
}

function writeOctal(buf: Buffer, value: number, offset: number, width: number): void {
  // width-1 zero-padded octal digits followed by NUL, as ustar expects
  const s = value.toString(8).padStart(width - 1, '0');
  if (s.length > width - 1) throw new Error(`tar: value ${value} too large for a ${width}-byte field`);
  buf.write(s, offset, width - 1, 'ascii');
  buf.writeUInt8(0, offset + width - 1);
}

/** A ustar header block for a regular file (or a directory when name ends in '/'). */
export function tarHeader(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(512, 0);
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: name too long: ${name}`);
  const isDir = name.endsWith('/');
  h.write(name, 0, 100, 'utf8');
  writeOctal(h, isDir ? 0o755 : 0o644, 100, 8);
  writeOctal(h, 0, 108, 8); // uid
  writeOctal(h, 0, 116, 8); // gid
  writeOctal(h, isDir ? 0 : size, 124, 12);
  writeOctal(h, mtime, 136, 12);
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  h.write(isDir ? '5' : '0', 156, 1, 'ascii');
  h.write('ustar\0', 257, 6, 'ascii');
  h.write('00', 263, 2, 'ascii');
  h.write('root', 265, 32, 'ascii');
  h.write('root', 297, 32, 'ascii');
  writeOctal(h, 0, 329, 8);
  writeOctal(h, 0, 337, 8);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'ascii');
  return h;
}

function* tarStream(files: Array<{ name: string; size: number }>, mtime: number): Generator<Buffer> {
  for (const f of files) {
    yield tarHeader(f.name, f.size, mtime);
    if (f.name.endsWith('/')) continue;
    yield* randomChunks(f.size);
    const pad = (512 - (f.size % 512)) % 512;
    if (pad) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(1024); // end-of-archive: two zero blocks
}

export interface TarGzResult {
  file: string;
  digest: string;
  size: number;
  diffId: string;
  uncompressedSize: number;
}

/**
 * Writes a gzipped ustar archive of random-content files to `destFile`,
 * hashing both the tar (diff_id) and the gzip (blob digest) while streaming,
 * so multi-hundred-MiB layers never sit in memory.
 */
export async function makeTarGz(destFile: string, files: Array<{ name: string; size: number }>): Promise<TarGzResult> {
  const tarTap = new HashTap();
  const gzTap = new HashTap();
  const mtime = Math.floor(Date.now() / 1000);
  await pipeline(
    Readable.from(tarStream(files, mtime)),
    tarTap,
    zlib.createGzip({ level: 1 }),
    gzTap,
    fs.createWriteStream(destFile),
  );
  return {
    file: destFile,
    digest: gzTap.digest(),
    size: gzTap.bytes,
    diffId: tarTap.digest(),
    uncompressedSize: tarTap.bytes,
  };
}

export interface OciLayoutOptions {
  /** One layer per entry; each holds one random file of that many bytes. */
  layers: number[];
  tag?: string;
}

interface IndexJson {
  schemaVersion: number;
  manifests: Array<{ mediaType: string; digest: string; size: number; annotations?: Record<string, string> }>;
}

/**
 * Writes (or adds a tag to) an OCI image layout. Calling it again on the same
 * directory with another tag adds a second image to index.json.
 */
export async function makeOciLayout(dir: string, opts: OciLayoutOptions): Promise<ImageInfo> {
  const tag = opts.tag ?? 'latest';
  const blobDir = path.join(dir, 'blobs', 'sha256');
  fs.mkdirSync(blobDir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));

  const layers: LayerInfo[] = [];
  const nonce = crypto.randomBytes(4).toString('hex');
  for (const [i, size] of opts.layers.entries()) {
    const tmp = path.join(blobDir, `.tmp-${nonce}-${i}`);
    const r = await makeTarGz(tmp, [
      { name: `layer${i}/`, size: 0 },
      { name: `layer${i}/data-${nonce}.bin`, size },
    ]);
    const final = path.join(blobDir, hexOf(r.digest));
    fs.renameSync(tmp, final);
    layers.push({ digest: r.digest, size: r.size, diffId: r.diffId, uncompressedSize: r.uncompressedSize, path: final });
  }

  const created = new Date().toISOString();
  const config = {
    created,
    architecture: 'amd64',
    os: 'linux',
    config: {
      Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      Cmd: ['/bin/true'],
      Labels: { 'registry-edge.test/nonce': nonce },
    },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: layers.map((_l, i) => ({ created, created_by: `registry-edge test layer ${i}` })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDigest = writeBlob(blobDir, configBytes);

  const manifest = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: configDigest, size: configBytes.length },
    layers: layers.map((l) => ({ mediaType: MEDIA_TYPES.ociLayerGzip, digest: l.digest, size: l.size })),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const manifestDigest = writeBlob(blobDir, manifestBytes);

  const indexFile = path.join(dir, 'index.json');
  const index: IndexJson = fs.existsSync(indexFile)
    ? (JSON.parse(fs.readFileSync(indexFile, 'utf8')) as IndexJson)
    : { schemaVersion: 2, manifests: [] };
  index.manifests = index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] !== tag);
  index.manifests.push({
    mediaType: MEDIA_TYPES.ociManifest,
    digest: manifestDigest,
    size: manifestBytes.length,
    annotations: { 'org.opencontainers.image.ref.name': tag },
  });
  fs.writeFileSync(indexFile, JSON.stringify(index));

  return { layoutDir: dir, tag, manifestDigest, manifestBytes, configDigest, configBytes, layers };
}

function writeBlob(blobDir: string, data: Buffer): string {
  const hex = sha256Hex(data);
  fs.writeFileSync(path.join(blobDir, hex), data);
  return `sha256:${hex}`;
}

export function skopeoBinary(): string {
  const found = which(process.env['SKOPEO_BIN'] ?? 'skopeo') ?? which('/usr/bin/skopeo');
  if (!found) throw new Error(`skopeo not found (set SKOPEO_BIN or install it):\n${SKOPEO_INSTALL_HINT}`);
  return found;
}

/**
 * Runs skopeo with --insecure-policy so nothing depends on /etc/containers/policy.json.
 * Callers pass --*-no-creds when anonymous so the machine's auth.json is never used.
 * Caveat: as root, skopeo still records blob locations in
 * /var/lib/containers/cache/blob-info-cache-v1.boltdb (no flag turns that off),
 * which is why a push of a blob it has seen elsewhere tries a cross-repo mount first.
 */
export function skopeo(args: string[], opts: { timeoutMs?: number | undefined } = {}): Promise<RunResult> {
  // --tmpdir: c/image otherwise spools big temporary blobs to /var/tmp.
  return run(skopeoBinary(), ['--insecure-policy', '--tmpdir', os.tmpdir(), ...args], {
    timeoutMs: opts.timeoutMs ?? 300_000,
  });
}

export interface PushOptions {
  format?: 'oci' | 'v2s2';
  /** user:password */
  creds?: string;
  /** Directory with ca.crt: verify the destination's TLS certificate against it. */
  certDir?: string;
  timeoutMs?: number;
}

export async function pushImage(layoutDir: string, tag: string, destRef: string, opts: PushOptions = {}): Promise<void> {
  const args = ['copy', opts.certDir ? '--dest-tls-verify=true' : '--dest-tls-verify=false'];
  if (opts.certDir) args.push('--dest-cert-dir', opts.certDir);
  if (opts.format) args.push('--format', opts.format);
  if (opts.creds) args.push('--dest-creds', opts.creds);
  else args.push('--dest-no-creds');
  args.push(`oci:${layoutDir}:${tag}`, `docker://${destRef}`);
  const r = await skopeo(args, { timeoutMs: opts.timeoutMs });
  if (r.code !== 0) {
    throw new Error(`skopeo push to ${destRef} failed (code ${r.code}${r.timedOut ? ', timed out' : ''}):\n${r.stderr}${r.stdout}`);
  }
}

export interface PullOptions {
  /** Default false: plain HTTP (or unverified HTTPS). */
  tlsVerify?: boolean;
  /** Directory with ca.crt / client certs; implies verification unless tlsVerify is false. */
  certDir?: string;
  creds?: string;
  timeoutMs?: number;
}

export interface PullResult extends RunResult {
  seconds: number;
}

/** skopeo copy docker://srcRef dir:destDir. Never throws on a failed copy: assert on `code`. */
export async function pullImage(srcRef: string, destDir: string, opts: PullOptions = {}): Promise<PullResult> {
  const args = ['copy'];
  const verify = opts.tlsVerify ?? opts.certDir !== undefined;
  args.push(`--src-tls-verify=${verify}`);
  if (opts.certDir) args.push('--src-cert-dir', opts.certDir);
  if (opts.creds) args.push('--src-creds', opts.creds);
  else args.push('--src-no-creds');
  args.push(`docker://${srcRef}`, `dir:${destDir}`);
  const t0 = process.hrtime.bigint();
  const r = await skopeo(args, { timeoutMs: opts.timeoutMs });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ...r, seconds };
}

/** `skopeo inspect --raw`: the manifest exactly as served, parsed. */
export async function skopeoInspect(ref: string, opts: { creds?: string; raw?: boolean } = {}): Promise<unknown> {
  const args = ['inspect', '--tls-verify=false'];
  if (opts.raw ?? true) args.push('--raw');
  if (opts.creds) args.push('--creds', opts.creds);
  else args.push('--no-creds');
  args.push(`docker://${ref}`);
  const r = await skopeo(args, { timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`skopeo inspect ${ref} failed (code ${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as unknown;
}

export interface PushBlobOptions {
  authorization?: string;
}

/**
 * Monolithic blob upload (POST, then PUT with ?digest=) with the file streamed
 * as the PUT body. Returns the digest the registry confirmed.
 */
export async function pushBlob(
  registryUrl: string,
  repo: string,
  filePath: string,
  opts: PushBlobOptions = {},
): Promise<{ digest: string; size: number }> {
  const digest = await sha256File(filePath);
  const size = fs.statSync(filePath).size;
  const auth: http.OutgoingHttpHeaders = opts.authorization ? { authorization: opts.authorization } : {};
  const start = await httpRequest(`${registryUrl}/v2/${repo}/blobs/uploads/`, {
    method: 'POST',
    headers: { ...auth, 'content-length': 0 },
  });
  const location = start.headers.location;
  if (start.status !== 202 || !location) {
    throw new Error(`pushBlob: POST uploads answered ${start.status}: ${start.body.toString('utf8')}`);
  }
  const put = new URL(location, registryUrl);
  put.searchParams.set('digest', digest);
  const done = await httpRequest(put.toString(), {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/octet-stream', 'content-length': size },
    body: fs.createReadStream(filePath),
    timeoutMs: 300_000,
  });
  if (done.status !== 201) {
    throw new Error(`pushBlob: PUT answered ${done.status}: ${done.body.toString('utf8')}`);
  }
  const confirmed = done.headers['docker-content-digest'];
  if (typeof confirmed === 'string' && confirmed !== digest) {
    throw new Error(`pushBlob: registry confirmed ${confirmed}, expected ${digest}`);
  }
  return { digest, size };
}

export interface VerifyResult {
  ok: boolean;
  reason?: string;
}

/**
 * Checks a skopeo `dir:` output against the image that was pushed: every
 * layer and the config must exist (named by bare hex digest) and hash to its
 * digest. The manifest is not compared byte-wise because `--format v2s2`
 * pushes re-encode it.
 */
export async function verifyDirPull(destDir: string, info: ImageInfo): Promise<VerifyResult> {
  if (!fs.existsSync(path.join(destDir, 'manifest.json'))) return { ok: false, reason: 'manifest.json missing' };
  const expected = [...info.layers.map((l) => ({ digest: l.digest, size: l.size, what: 'layer' })), {
    digest: info.configDigest,
    size: info.configBytes.length,
    what: 'config',
  }];
  for (const e of expected) {
    const file = path.join(destDir, hexOf(e.digest));
    if (!fs.existsSync(file)) return { ok: false, reason: `${e.what} ${e.digest} missing` };
    const size = fs.statSync(file).size;
    if (size !== e.size) return { ok: false, reason: `${e.what} ${e.digest}: size ${size}, expected ${e.size}` };
    const got = await sha256File(file);
    if (got !== e.digest) return { ok: false, reason: `${e.what} ${e.digest}: content hashes to ${got}` };
  }
  return { ok: true };
}
