// Where the edge does not answer from its cache, it answers as the upstream does:
// one catalogue of requests sent straight to a real docker-registry and through the
// edge (edge -> shim -> the same registry), status codes and OCI error codes compared.
//
// Each target works in its own namespace of the one registry (`d/...` straight,
// `e/...` through the edge), so pushes and deletes change both sides the same way and
// step N of one side never sees step N of the other.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheProblems, descriptors, descriptorsBackTo } from '../../helpers/cache-invariants.js';
import { MEDIA_TYPES, makeOciLayout, pushImage, sha256Digest, type ImageInfo } from '../../helpers/image.js';
import { httpRequest, type HttpResult } from '../../helpers/proc.js';
import { startStack, type Stack } from '../../helpers/stack.js';

/** One side of the comparison: where requests go and the namespace its repositories live in. */
interface Target {
  readonly label: 'registry' | 'edge';
  readonly url: string;
  readonly ns: string;
  /** Upload session locations (path and query) kept by earlier steps, by the step's `keep` name. */
  readonly uploads: Map<string, string>;
}

/** What is compared: the status, the first OCI error code, and for 2xx answers what they carry. */
interface Answer {
  readonly status: number;
  readonly code: string;
  /** Content-Type without parameters; 2xx only. */
  readonly type: string;
  /** Docker-Content-Digest and a hash of the body with the namespace taken out; 2xx only. */
  readonly content: string;
}

interface Step {
  readonly name: string;
  readonly method: string;
  /** Path and query, built for one target. */
  readonly path: (t: Target) => string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer | string;
  /** Keep the answer's Location (an upload session) under this name. */
  readonly keep?: string;
  /** Send the body with Transfer-Encoding: chunked instead of a Content-Length. */
  readonly chunked?: boolean;
}

const NO_CODE = '-';

function firstCode(res: HttpResult): string {
  try {
    const body = JSON.parse(res.body.toString('utf8')) as { errors?: Array<{ code?: unknown }> };
    const code = body.errors?.[0]?.code;
    return typeof code === 'string' ? code : NO_CODE;
  } catch {
    return NO_CODE;
  }
}

function answerOf(res: HttpResult): Answer {
  const ok = res.status >= 200 && res.status < 300;
  const digest = res.headers['docker-content-digest'];
  // JSON bodies (tag lists, the catalogue) name repositories: both namespaces read as one.
  const json = /json/.test(String(res.headers['content-type'])) && !res.headers['docker-content-digest'];
  const body = json ? Buffer.from(res.body.toString('utf8').replace(/"[de]\//g, '"NS/')) : res.body;
  const type = ok ? (String(res.headers['content-type'] ?? '').split(';')[0] ?? '') : '';
  const content = !ok ? '' : type === T.schema1 ? schema1Content(res.body) : `${typeof digest === 'string' ? digest : NO_CODE} ${createHash('sha256').update(body).digest('hex').slice(0, 12)}`;
  return { status: res.status, code: firstCode(res), type, content };
}

/**
 * registry:2 signs a schema1 rewrite anew for every request and writes the repository
 * into it (so its Docker-Content-Digest differs too): compared without the signatures,
 * both namespaces read as one.
 */
function schema1Content(body: Buffer): string {
  const doc = JSON.parse(body.toString('utf8')) as { signatures?: unknown; name?: unknown };
  delete doc.signatures;
  if (typeof doc.name === 'string') doc.name = doc.name.replace(/^[de]\//, 'NS/');
  return `schema1 ${createHash('sha256').update(JSON.stringify(doc)).digest('hex').slice(0, 12)}`;
}

/** One request on a fresh connection with the path sent exactly as written (no URL normalisation of dot segments). */
function rawRequest(base: string, target: string, step: Step): Promise<HttpResult> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { ...step.headers };
    if (step.body !== undefined && !step.chunked) headers['content-length'] = Buffer.byteLength(step.body);
    const req = http.request({ host: u.hostname, port: u.port, path: target, method: step.method, headers, agent: false, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      const done = (): void => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
      res.on('data', (c: Buffer) => chunks.push(c));
      // registry:2 announces the blob's length on some 416s and sends less: the status still counts.
      res.once('error', done);
      res.once('end', done);
    });
    req.once('timeout', () => req.destroy(new Error(`timeout requesting ${target}`)));
    req.once('error', reject);
    if (step.chunked && step.body !== undefined) {
      // Two writes before the end, so the body really goes out in chunks.
      const body = Buffer.from(step.body);
      req.write(body.subarray(0, body.length >> 1));
      req.end(body.subarray(body.length >> 1));
    } else {
      req.end(step.body);
    }
  });
}

async function send(step: Step, t: Target): Promise<Answer> {
  let res: HttpResult;
  try {
    res = await rawRequest(t.url, step.path(t), step);
  } catch (err) {
    return { status: 0, code: (err as NodeJS.ErrnoException).code ?? String(err), type: '', content: '' };
  }
  if (step.keep !== undefined && typeof res.headers.location === 'string') {
    const loc = new URL(res.headers.location, t.url);
    t.uploads.set(step.keep, loc.pathname + loc.search);
  }
  return answerOf(res);
}

/** An upload location kept by an earlier step, with more query parameters. */
function upload(t: Target, keep: string, query = ''): string {
  const loc = t.uploads.get(keep);
  assert.ok(loc, `${t.label}: no upload session kept as ${keep}`);
  if (!query) return loc;
  return loc + (loc.includes('?') ? '&' : '?') + query;
}

const show = (a: Answer): string => `${a.status} ${a.code}${a.type ? ` ${a.type}` : ''}`;

/** Media types as the table writes them. */
const T = {
  oci: MEDIA_TYPES.ociManifest,
  index: MEDIA_TYPES.ociIndex,
  docker: MEDIA_TYPES.dockerManifest,
  list: MEDIA_TYPES.dockerManifestList,
  schema1: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
  blob: 'application/octet-stream',
} as const;

/**
 * Where the edge answers differently from registry:2 (distribution 2.8), each with why.
 * `spec`: the distribution spec (or RFC 9110, which it defers to for ranges) gives the
 * edge's answer, or registry:2's is a fault of its own. `bug`: the edge is wrong; the
 * fix belongs outside the grammar, and the entry goes when it lands (the test then
 * fails here until it is removed, so the table stays true).
 * Apart from this table one rule holds: where registry:2's router answers with a plain
 * text body (no OCI error), the edge sends the same status with an OCI error body, as
 * the spec's error format asks of 4xx bodies.
 */
const KNOWN: Record<string, { readonly registry: string; readonly edge: string; readonly kind: 'spec' | 'bug'; readonly why: string }> = {
  'GET manifest by tag, no Accept': {
    registry: '404 MANIFEST_UNKNOWN', edge: `200 - ${T.oci}`, kind: 'spec',
    why: 'the manifest exists, and the spec answers a GET of an existing manifest with 200 (Accept is a SHOULD for clients); registry:2.8 hides OCI manifests from clients that do not list their type, a schema1-era rule distribution v3 dropped',
  },
  'GET manifest by tag, Accept */*': { registry: '404 MANIFEST_UNKNOWN', edge: `200 - ${T.oci}`, kind: 'spec', why: 'as without Accept: */* accepts every type' },
  'GET manifest, Accept application/*': { registry: '404 MANIFEST_UNKNOWN', edge: `200 - ${T.oci}`, kind: 'spec', why: 'as without Accept: application/* covers every manifest type (RFC 9110 §12.5.1)' },
  'GET manifest by digest, no Accept': { registry: '404 MANIFEST_UNKNOWN', edge: `200 - ${T.oci}`, kind: 'spec', why: 'as by tag: the manifest exists' },
  'GET OCI index, no Accept': { registry: '404 MANIFEST_UNKNOWN', edge: `200 - ${T.index}`, kind: 'spec', why: 'as for an OCI manifest' },
  'GET Docker manifest, no Accept': {
    registry: `200 - ${T.schema1}`, edge: `200 - ${T.docker}`, kind: 'spec',
    why: 'the spec serves a manifest byte for byte as it was pushed; registry:2.8 rewrites it to a signed schema1 manifest (a format outside the spec) for clients that send no Accept',
  },
  'GET Docker manifest list, no Accept': {
    registry: `200 - ${T.schema1}`, edge: `200 - ${T.list}`, kind: 'spec',
    why: 'as for a Docker manifest without Accept: the edge serves the list as pushed, registry:2.8 rewrites it to schema1',
  },
  'GET blob range reversed (ignored)': {
    registry: '416 -', edge: `200 - ${T.blob}`, kind: 'spec',
    why: 'RFC 9110 §14.2: a server MAY ignore a Range with an invalid ranges-specifier; the edge sends the whole blob (registry:2\'s 416 also announces the blob\'s length and sends 14 bytes)',
  },
  'GET blob range in other units (ignored)': { registry: '416 -', edge: `200 - ${T.blob}`, kind: 'spec', why: 'RFC 9110 §14.2: an origin server MUST ignore a Range in a unit it does not understand' },
  'GET blob two ranges': {
    registry: '206 - multipart/byteranges', edge: `200 - ${T.blob}`, kind: 'spec',
    why: 'RFC 9110 §14.2: a server MAY ignore Range; the edge serves single ranges (what blob clients send) and answers several with the whole blob',
  },
  'HEAD blob with a Range': {
    registry: '206 - application/octet-stream', edge: `200 - ${T.blob}`, kind: 'spec',
    why: 'RFC 9110 §14.2: a server MUST ignore Range on any method but GET',
  },
  'PUT manifest with a malformed digest': { registry: '500 UNKNOWN', edge: '400 DIGEST_INVALID', kind: 'spec', why: 'registry:2 fails internally on client input; DIGEST_INVALID is the spec\'s code for a malformed digest' },
  'GET manifest with a malformed digest': { registry: '500 UNKNOWN', edge: '400 DIGEST_INVALID', kind: 'spec', why: 'as for PUT' },
  'GET referrers with a malformed digest': {
    registry: '404 -', edge: '400 DIGEST_INVALID', kind: 'spec',
    why: 'the spec: a referrers request with invalid digest syntax MUST get 400; registry:2.8 has no referrers API (404 for every referrers path, which the edge forwards for valid digests)',
  },
  'name in upper case': {
    registry: '404 MANIFEST_UNKNOWN', edge: '400 NAME_INVALID', kind: 'spec',
    why: 'the spec\'s name grammar is lower case, and NAME_INVALID is its code for an invalid name in any API operation; registry:2 reads an upper-case first component as a host name (docker reference grammar)',
  },
  'name with .. segment': {
    registry: '301 -', edge: '400 NAME_INVALID', kind: 'spec',
    why: 'the name grammar has no dot or empty components; registry:2 (Go) cleans the path and redirects to another repository\'s URL, which a proxy that authorizes by name must not do',
  },
  'name with %2e%2e segment': { registry: '301 -', edge: '400 NAME_INVALID', kind: 'spec', why: 'as .. (Go decodes, then cleans and redirects)' },
  'name with //': { registry: '301 -', edge: '400 NAME_INVALID', kind: 'spec', why: 'as .. (an empty component)' },
  'name with %2F': {
    registry: `200 - ${T.oci}`, edge: '400 NAME_INVALID', kind: 'spec',
    why: 'the name grammar has no %; registry:2 decodes first. The edge takes names as written, so authorization, cache keys and the upstream see one spelling of a name (no character of the grammar needs encoding)',
  },
  'name with a percent-encoded letter': { registry: `200 - ${T.oci}`, edge: '400 NAME_INVALID', kind: 'spec', why: 'as %2F' },
  'GET manifest with a percent-encoded tag': { registry: `200 - ${T.oci}`, edge: '404 MANIFEST_UNKNOWN', kind: 'spec', why: 'the tag grammar has no %: a tag outside it names no manifest (404, as for every other tag outside the grammar)' },
  'name with a trailing separator': { registry: '404 -', edge: '400 NAME_INVALID', kind: 'spec', why: 'outside the name grammar: NAME_INVALID, the spec\'s code for an invalid name in any API operation' },
  'name with ___': { registry: '404 -', edge: '400 NAME_INVALID', kind: 'spec', why: 'as a trailing separator (the grammar allows _ and __ only)' },
  'name of 256 characters': { registry: '500 UNKNOWN', edge: '400 NAME_INVALID', kind: 'spec', why: 'the spec caps names below 256 characters; registry:2 fails internally' },
  'GET blob sha384 digest': {
    registry: '404 BLOB_UNKNOWN', edge: '400 DIGEST_INVALID', kind: 'spec',
    why: 'the image spec registers sha256 and sha512; the edge verifies every byte it caches, so it takes only the algorithms it verifies, and answers others as registry:2 answers md5 (DIGEST_INVALID)',
  },
  'tags/list with a trailing slash': {
    registry: '301 -', edge: '404 NAME_UNKNOWN', kind: 'spec',
    why: 'the spec\'s route has no trailing slash; the edge answers a path outside the spec\'s routes with 404, as registry:2 does for every other unknown path',
  },
  'PUT /v2/': { registry: '200 - application/json', edge: '405 UNSUPPORTED', kind: 'spec', why: 'the spec defines GET (and HEAD) of /v2/ only; registry:2 answers any method there' },
  'OPTIONS manifest': { registry: '200 -', edge: '405 UNSUPPORTED', kind: 'spec', why: 'the spec has no OPTIONS; 405 for a method a route does not have (RFC 9110 §15.5.6), as for POST and PATCH' },
};

/** Both sides agree, or the edge only adds an OCI error body where registry:2 sent plain text with the same status. */
function agrees(registry: Answer, edge: Answer): boolean {
  if (registry.status !== edge.status) return false;
  if (registry.code === NO_CODE && edge.code !== NO_CODE && registry.status >= 400) return true;
  return registry.code === edge.code && registry.content === edge.content;
}

describe('differential: the edge answers as registry:2 does', () => {
  let stack: Stack;
  let image: ImageInfo;
  let gone: ImageInfo;
  let docker: Descriptor;
  const targets: Target[] = [];

  before(async () => {
    stack = await startStack('re-diff-', {
      // No descriptors of cached blobs kept between requests, so the edge's count comes back to its baseline.
      edge: { env: { REGISTRY_EDGE_CACHE_OPEN_FILES: '0' } },
      before: async ({ work, registry }) => {
        const layout = path.join(work, 'layout');
        image = await makeOciLayout(layout, { layers: [4096, 70_000], tag: 'v1' });
        gone = await makeOciLayout(layout, { layers: [2048], tag: 'gone' });
        for (const ns of ['d', 'e']) {
          for (const tag of ['v1', 'v2', 'v3']) await pushImage(layout, 'v1', `${registry.host}/${ns}/app:${tag}`);
          await pushImage(layout, 'gone', `${registry.host}/${ns}/app:gone`);
          await pushImage(layout, 'v1', `${registry.host}/${ns}/app:docker`, { format: 'v2s2' });
          await pushImage(layout, 'v1', `${registry.host}/${ns}/other:v1`);
        }
      },
    });
    // skopeo converts the image to Docker schema 2 the same way for both namespaces.
    const dockerManifest = await httpRequest(`${stack.registry.url}/v2/d/app/manifests/docker`, { headers: { accept: MEDIA_TYPES.dockerManifest } });
    docker = { mediaType: MEDIA_TYPES.dockerManifest, digest: String(dockerManifest.headers['docker-content-digest']), size: dockerManifest.body.length };
    targets.push(
      { label: 'registry', url: stack.registry.url, ns: 'd', uploads: new Map() },
      { label: 'edge', url: stack.edge.url, ns: 'e', uploads: new Map() },
    );
  });

  after(async () => {
    await stack?.stop();
  });

  test('pull, push, content discovery and management, malformed input: same status and OCI code, or a difference the table explains', async () => {
    const [direct, through] = targets as [Target, Target];
    const baseline = descriptors(stack.edge.proc.pid);
    const steps = catalogue(image, gone, docker);
    const wrong: string[] = [];
    const seen = new Set<string>();
    for (const step of steps) {
      assert.ok(!seen.has(step.name), `step names are unique: ${step.name}`);
      seen.add(step.name);
      // In order, one side then the other: a step may use what an earlier one kept.
      const registry = await send(step, direct);
      const edge = await send(step, through);
      const known = KNOWN[step.name];
      const line = `${step.name}: registry ${show(registry)}, edge ${show(edge)}`;
      if (known && known.kind === 'bug' && agrees(registry, edge)) {
        wrong.push(`${line}: the edge now answers as registry:2 does, so the fault is fixed; take its entry out of the table`);
      } else if (known) {
        if (show(registry) !== known.registry || show(edge) !== known.edge) wrong.push(`${line}; the table says registry ${known.registry}, edge ${known.edge}`);
      } else if (!agrees(registry, edge)) {
        wrong.push(`${line}${registry.content !== edge.content ? ` (content ${registry.content} / ${edge.content})` : ''}`);
      }
    }
    for (const name of Object.keys(KNOWN)) if (!seen.has(name)) wrong.push(`the table names a step the catalogue lacks: ${name}`);
    assert.deepEqual(wrong, [], `answers that differ:\n${wrong.join('\n')}`);
    assert.ok(stack.edge.proc.running(), 'the edge is still up');
    assert.deepEqual(await cacheProblems(stack.edge.cacheDir), { wrongBlobs: [], tempFiles: [] });
    await descriptorsBackTo(stack.edge.proc.pid, baseline, 4);
  });
});

const OCI = { accept: MEDIA_TYPES.ociManifest };

interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
}

function catalogue(image: ImageInfo, gone: ImageInfo, docker: Descriptor): Step[] {
  const [small, big] = image.layers;
  const [goneLayer] = gone.layers;
  assert.ok(small && big && goneLayer);
  const absent = `sha256:${'0'.repeat(63)}1`;
  const chunk1 = Buffer.from('hello, ');
  const chunk2 = Buffer.from('differential world');
  const chunked = sha256Digest(Buffer.concat([chunk1, chunk2]));
  const mono = Buffer.from('a monolithic blob');
  const single = Buffer.from('a single-POST blob');
  const chunkedBody = Buffer.from('a blob sent in chunks, with no Content-Length '.repeat(50));
  const manifest = image.manifestBytes;
  const otherManifest = Buffer.from(JSON.stringify({ ...JSON.parse(manifest.toString()), annotations: { x: 'y' } }));
  const unknownBlobManifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    config: { mediaType: MEDIA_TYPES.ociConfig, digest: absent, size: 2 },
    layers: [],
  }));
  const platform = { architecture: 'amd64', os: 'linux' };
  const index = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociIndex,
    manifests: [{ mediaType: MEDIA_TYPES.ociManifest, digest: image.manifestDigest, size: manifest.length, platform }],
  }));
  const list = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MEDIA_TYPES.dockerManifestList, manifests: [{ ...docker, platform }] }));
  const ct = (type: string): Record<string, string> => ({ 'content-type': type });
  const r = (t: Target, rest: string): string => `/v2/${t.ns}/${rest}`;
  return [
    // Pull
    { name: 'GET /v2/', method: 'GET', path: () => '/v2/' },
    { name: 'HEAD /v2/', method: 'HEAD', path: () => '/v2/' },
    { name: 'GET manifest by tag, Accept OCI', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: OCI },
    { name: 'GET manifest by tag, Accept OCI and Docker', method: 'GET', path: (t) => r(t, 'app/manifests/v2'), headers: { accept: `${MEDIA_TYPES.dockerManifest}, ${MEDIA_TYPES.ociManifest}` } },
    { name: 'GET manifest by tag, Accept Docker v2 only', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: { accept: MEDIA_TYPES.dockerManifest } },
    { name: 'GET manifest by tag, no Accept', method: 'GET', path: (t) => r(t, 'app/manifests/v3') },
    { name: 'GET manifest by tag, Accept */*', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: { accept: '*/*' } },
    { name: 'HEAD manifest by tag, Accept Docker v2 only', method: 'HEAD', path: (t) => r(t, 'app/manifests/v1'), headers: { accept: MEDIA_TYPES.dockerManifest } },
    { name: 'GET manifest by tag, Accept Docker manifest list only', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: { accept: MEDIA_TYPES.dockerManifestList } },
    { name: 'HEAD manifest by tag', method: 'HEAD', path: (t) => r(t, 'app/manifests/v1'), headers: OCI },
    { name: 'GET manifest by digest, Accept OCI', method: 'GET', path: (t) => r(t, `app/manifests/${image.manifestDigest}`), headers: OCI },
    { name: 'GET manifest by digest, no Accept', method: 'GET', path: (t) => r(t, `app/manifests/${image.manifestDigest}`) },
    { name: 'GET manifest by digest, Accept Docker v2 only (the edge has it)', method: 'GET', path: (t) => r(t, `app/manifests/${image.manifestDigest}`), headers: { accept: MEDIA_TYPES.dockerManifest } },
    { name: 'HEAD manifest by digest', method: 'HEAD', path: (t) => r(t, `app/manifests/${image.manifestDigest}`), headers: OCI },
    { name: 'GET Docker manifest, Accept Docker v2', method: 'GET', path: (t) => r(t, 'app/manifests/docker'), headers: { accept: MEDIA_TYPES.dockerManifest } },
    { name: 'GET Docker manifest, Accept OCI only', method: 'GET', path: (t) => r(t, 'app/manifests/docker'), headers: OCI },
    { name: 'GET Docker manifest, no Accept', method: 'GET', path: (t) => r(t, 'app/manifests/docker') },
    { name: 'GET Docker manifest by digest, Accept OCI only', method: 'GET', path: (t) => r(t, `app/manifests/${docker.digest}`), headers: OCI },
    { name: 'PUT OCI index', method: 'PUT', path: (t) => r(t, 'app/manifests/multi'), headers: ct(MEDIA_TYPES.ociIndex), body: index },
    { name: 'GET OCI index, Accept index', method: 'GET', path: (t) => r(t, 'app/manifests/multi'), headers: { accept: MEDIA_TYPES.ociIndex } },
    { name: 'GET OCI index, Accept OCI manifest only', method: 'GET', path: (t) => r(t, 'app/manifests/multi'), headers: OCI },
    { name: 'GET OCI index, Accept Docker types', method: 'GET', path: (t) => r(t, 'app/manifests/multi'), headers: { accept: `${MEDIA_TYPES.dockerManifest}, ${MEDIA_TYPES.dockerManifestList}` } },
    { name: 'GET OCI index, no Accept', method: 'GET', path: (t) => r(t, 'app/manifests/multi') },
    { name: 'HEAD OCI index, Accept OCI manifest only', method: 'HEAD', path: (t) => r(t, 'app/manifests/multi'), headers: OCI },
    { name: 'PUT Docker manifest list', method: 'PUT', path: (t) => r(t, 'app/manifests/dlist'), headers: ct(MEDIA_TYPES.dockerManifestList), body: list },
    { name: 'GET Docker manifest list, Accept list', method: 'GET', path: (t) => r(t, 'app/manifests/dlist'), headers: { accept: MEDIA_TYPES.dockerManifestList } },
    { name: 'GET Docker manifest list, Accept Docker v2 only', method: 'GET', path: (t) => r(t, 'app/manifests/dlist'), headers: { accept: MEDIA_TYPES.dockerManifest } },
    { name: 'GET Docker manifest list again, Accept every manifest type', method: 'GET', path: (t) => r(t, 'app/manifests/dlist'), headers: { accept: [T.oci, T.index, T.docker, T.list].join(', ') } },
    { name: 'GET Docker manifest list, Accept OCI types', method: 'GET', path: (t) => r(t, 'app/manifests/dlist'), headers: { accept: `${MEDIA_TYPES.ociManifest}, ${MEDIA_TYPES.ociIndex}` } },
    { name: 'GET Docker manifest list, no Accept', method: 'GET', path: (t) => r(t, 'app/manifests/dlist') },
    { name: 'GET manifest, Accept with q=0 for OCI', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: { accept: `${MEDIA_TYPES.ociManifest};q=0, ${MEDIA_TYPES.dockerManifest}` } },
    { name: 'GET manifest, Accept application/*', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: { accept: 'application/*' } },
    { name: 'GET manifest with ?ns= (containerd mirrors)', method: 'GET', path: (t) => r(t, 'app/manifests/v1?ns=docker.io'), headers: OCI },
    { name: 'GET manifest with If-None-Match of its digest', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: { ...OCI, 'if-none-match': `"${image.manifestDigest}"` } },
    { name: 'GET manifest with If-None-Match of another digest', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: { ...OCI, 'if-none-match': `"sha256:${'0'.repeat(64)}"` } },
    { name: 'GET manifest with a Range', method: 'GET', path: (t) => r(t, 'app/manifests/v1'), headers: { ...OCI, range: 'bytes=0-9' } },
    { name: 'GET manifest of an unknown tag', method: 'GET', path: (t) => r(t, 'app/manifests/nope'), headers: OCI },
    { name: 'HEAD manifest of an unknown tag', method: 'HEAD', path: (t) => r(t, 'app/manifests/nope'), headers: OCI },
    { name: 'GET manifest of an unknown digest', method: 'GET', path: (t) => r(t, `app/manifests/${absent}`), headers: OCI },
    { name: 'GET manifest with a tag of 128 characters', method: 'GET', path: (t) => r(t, `app/manifests/${'t'.repeat(128)}`), headers: OCI },
    { name: 'GET manifest in a repository named like a route', method: 'GET', path: (t) => r(t, 'app/manifests/x/manifests/v1'), headers: OCI },
    { name: 'GET manifest in an unknown repository', method: 'GET', path: (t) => r(t, 'nothing/manifests/v1'), headers: OCI },
    { name: 'GET manifest by digest known in another repository', method: 'GET', path: (t) => r(t, `nothing/manifests/${image.manifestDigest}`), headers: OCI },
    { name: 'GET blob, range on a miss (bytes=0-9)', method: 'GET', path: (t) => r(t, `app/blobs/${big.digest}`), headers: { range: 'bytes=0-9' } },
    { name: 'HEAD blob present', method: 'HEAD', path: (t) => r(t, `app/blobs/${small.digest}`) },
    { name: 'GET blob present', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`) },
    { name: 'GET blob present again (a hit)', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`) },
    { name: 'GET blob range bytes=0-9', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=0-9' } },
    { name: 'GET blob range bytes=10-', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=10-' } },
    { name: 'GET blob range bytes=-5', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=-5' } },
    { name: 'GET blob range past the end', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=99999999-' } },
    { name: 'GET blob range reversed (ignored)', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=9-5' } },
    { name: 'GET blob range in other units (ignored)', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'items=0-5' } },
    { name: 'GET blob two ranges', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=0-1,5-6' } },
    { name: 'HEAD blob with a Range', method: 'HEAD', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=0-9' } },
    { name: 'GET blob with If-None-Match of its digest', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { 'if-none-match': `"${small.digest}"` } },
    { name: 'HEAD blob with If-None-Match of its digest', method: 'HEAD', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { 'if-none-match': `"${small.digest}"` } },
    { name: 'GET blob with If-None-Match of another digest (ignored)', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { 'if-none-match': `"${absent}"` } },
    { name: 'GET blob with If-None-Match of its digest as a weak tag', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { 'if-none-match': `W/"${small.digest}"` } },
    { name: 'GET blob with If-None-Match, a list naming it', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { 'if-none-match': `"${absent}", W/"${small.digest}"` } },
    { name: 'GET blob with If-None-Match *', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { 'if-none-match': '*' } },
    { name: 'GET blob not cached with If-None-Match of its digest', method: 'GET', path: (t) => r(t, `app/blobs/${goneLayer.digest}`), headers: { 'if-none-match': `"${goneLayer.digest}"` } },
    { name: 'GET blob absent with If-None-Match *', method: 'GET', path: (t) => r(t, `app/blobs/${absent}`), headers: { 'if-none-match': '*' } },
    { name: 'GET blob range with If-Range of its digest as a weak tag', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=0-9', 'if-range': `W/"${small.digest}"` } },
    { name: 'GET blob range with If-Range of a date', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=0-9', 'if-range': new Date().toUTCString() } },
    { name: 'GET blob range with If-Range of its digest', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=0-9', 'if-range': `"${small.digest}"` } },
    { name: 'GET blob range with If-Range of another digest', method: 'GET', path: (t) => r(t, `app/blobs/${small.digest}`), headers: { range: 'bytes=0-9', 'if-range': `"sha256:${'0'.repeat(64)}"` } },
    { name: 'GET blob absent', method: 'GET', path: (t) => r(t, `app/blobs/${absent}`) },
    { name: 'HEAD blob absent', method: 'HEAD', path: (t) => r(t, `app/blobs/${absent}`) },
    { name: 'GET blob in an unknown repository', method: 'GET', path: (t) => r(t, `nothing/blobs/${absent}`) },
    { name: 'GET blob cached, from a repository without it', method: 'GET', path: (t) => r(t, `nothing/blobs/${small.digest}`) },
    { name: 'GET blob sha512 absent', method: 'GET', path: (t) => r(t, `app/blobs/sha512:${'a'.repeat(128)}`) },

    // Push
    { name: 'POST upload (monolithic, then PUT)', method: 'POST', path: (t) => r(t, 'app/blobs/uploads/'), headers: { 'content-length': '0' }, keep: 'mono' },
    { name: 'GET upload status of a new session', method: 'GET', path: (t) => upload(t, 'mono') },
    { name: 'PUT upload with the blob', method: 'PUT', path: (t) => upload(t, 'mono', `digest=${sha256Digest(mono)}`), headers: ct('application/octet-stream'), body: mono },
    { name: 'HEAD the pushed blob', method: 'HEAD', path: (t) => r(t, `app/blobs/${sha256Digest(mono)}`) },
    { name: 'POST upload with ?digest= and the body (single POST)', method: 'POST', path: (t) => r(t, `app/blobs/uploads/?digest=${sha256Digest(single)}`), headers: ct('application/octet-stream'), body: single },
    { name: 'POST upload without the trailing slash', method: 'POST', path: (t) => r(t, 'app/blobs/uploads'), headers: { 'content-length': '0' } },
    { name: 'POST upload (chunked)', method: 'POST', path: (t) => r(t, 'app/blobs/uploads/'), headers: { 'content-length': '0' }, keep: 'chunked' },
    { name: 'PATCH first chunk', method: 'PATCH', path: (t) => upload(t, 'chunked'), headers: { ...ct('application/octet-stream'), 'content-range': `0-${chunk1.length - 1}` }, body: chunk1, keep: 'chunked' },
    { name: 'GET upload status after a chunk', method: 'GET', path: (t) => upload(t, 'chunked') },
    { name: 'PATCH second chunk', method: 'PATCH', path: (t) => upload(t, 'chunked'), headers: { ...ct('application/octet-stream'), 'content-range': `${chunk1.length}-${chunk1.length + chunk2.length - 1}` }, body: chunk2, keep: 'chunked' },
    { name: 'PUT closing the chunked upload', method: 'PUT', path: (t) => upload(t, 'chunked', `digest=${chunked}`), headers: { 'content-length': '0' } },
    { name: 'GET the chunked blob', method: 'GET', path: (t) => r(t, `app/blobs/${chunked}`) },
    { name: 'POST upload (chunked transfer encoding)', method: 'POST', path: (t) => r(t, 'app/blobs/uploads/'), headers: { 'content-length': '0' }, keep: 'te' },
    { name: 'PUT upload with a chunked body', method: 'PUT', path: (t) => upload(t, 'te', `digest=${sha256Digest(chunkedBody)}`), headers: ct('application/octet-stream'), body: chunkedBody, chunked: true },
    { name: 'HEAD the blob pushed with a chunked body', method: 'HEAD', path: (t) => r(t, `app/blobs/${sha256Digest(chunkedBody)}`) },
    { name: 'POST upload (used under another repository)', method: 'POST', path: (t) => r(t, 'app/blobs/uploads/'), headers: { 'content-length': '0' }, keep: 'moved' },
    { name: 'PATCH an upload session under another repository\'s path', method: 'PATCH', path: (t) => upload(t, 'moved').replace(`/${t.ns}/app/`, `/${t.ns}/other/`), headers: ct('application/octet-stream'), body: 'x' },
    { name: 'HEAD upload session', method: 'HEAD', path: (t) => upload(t, 'moved') },
    { name: 'POST mount without from', method: 'POST', path: (t) => r(t, `mounted/blobs/uploads/?mount=${big.digest}`), headers: { 'content-length': '0' } },
    { name: 'POST upload (out of order)', method: 'POST', path: (t) => r(t, 'app/blobs/uploads/'), headers: { 'content-length': '0' }, keep: 'ooo' },
    { name: 'PATCH a first chunk that does not start at 0', method: 'PATCH', path: (t) => upload(t, 'ooo'), headers: { ...ct('application/octet-stream'), 'content-range': '100-104' }, body: 'xxxxx' },
    { name: 'POST upload (wrong digest)', method: 'POST', path: (t) => r(t, 'app/blobs/uploads/'), headers: { 'content-length': '0' }, keep: 'wrong' },
    { name: 'PUT upload whose bytes do not match ?digest=', method: 'PUT', path: (t) => upload(t, 'wrong', `digest=${absent}`), headers: ct('application/octet-stream'), body: 'not these bytes' },
    { name: 'POST upload (bad digest)', method: 'POST', path: (t) => r(t, 'app/blobs/uploads/'), headers: { 'content-length': '0' }, keep: 'bad' },
    { name: 'PUT upload with a malformed ?digest=', method: 'PUT', path: (t) => upload(t, 'bad', 'digest=sha256:zz'), headers: ct('application/octet-stream'), body: 'x' },
    { name: 'PUT upload without ?digest=', method: 'PUT', path: (t) => upload(t, 'bad'), headers: ct('application/octet-stream'), body: 'x' },
    { name: 'DELETE upload (cancel)', method: 'DELETE', path: (t) => upload(t, 'bad') },
    { name: 'GET upload status of a cancelled session', method: 'GET', path: (t) => upload(t, 'bad') },
    { name: 'PATCH an upload session that never was', method: 'PATCH', path: (t) => r(t, 'app/blobs/uploads/0b4f4a3e-5a43-4f5e-9d5f-3a1c2b9d8e7f'), headers: ct('application/octet-stream'), body: 'x' },
    { name: 'PUT an upload session id that is not a UUID', method: 'PUT', path: (t) => r(t, `app/blobs/uploads/not-a-uuid?digest=${absent}`), body: 'x' },
    { name: 'POST mount from a repository that has the blob', method: 'POST', path: (t) => r(t, `mounted/blobs/uploads/?mount=${small.digest}&from=${t.ns}/app`), headers: { 'content-length': '0' } },
    { name: 'HEAD the mounted blob', method: 'HEAD', path: (t) => r(t, `mounted/blobs/${small.digest}`) },
    { name: 'POST mount of a blob the source does not have', method: 'POST', path: (t) => r(t, `mounted/blobs/uploads/?mount=${absent}&from=${t.ns}/app`), headers: { 'content-length': '0' } },
    { name: 'POST mount with a malformed digest', method: 'POST', path: (t) => r(t, `mounted/blobs/uploads/?mount=sha256:zz&from=${t.ns}/app`), headers: { 'content-length': '0' } },
    { name: 'POST mount from a malformed name', method: 'POST', path: () => `/v2/x/mounted/blobs/uploads/?mount=${small.digest}&from=UPPER/app`, headers: { 'content-length': '0' } },
    { name: 'PUT manifest by tag', method: 'PUT', path: (t) => r(t, 'app/manifests/pushed'), headers: ct(MEDIA_TYPES.ociManifest), body: otherManifest },
    { name: 'GET the pushed tag', method: 'GET', path: (t) => r(t, 'app/manifests/pushed'), headers: OCI },
    { name: 'PUT manifest by its digest', method: 'PUT', path: (t) => r(t, `app/manifests/${sha256Digest(otherManifest)}`), headers: ct(MEDIA_TYPES.ociManifest), body: otherManifest },
    { name: 'PUT manifest under a digest it does not have', method: 'PUT', path: (t) => r(t, `app/manifests/${absent}`), headers: ct(MEDIA_TYPES.ociManifest), body: manifest },
    { name: 'PUT manifest naming a blob the repository lacks', method: 'PUT', path: (t) => r(t, 'app/manifests/orphan'), headers: ct(MEDIA_TYPES.ociManifest), body: unknownBlobManifest },
    { name: 'PUT manifest of 5 MiB', method: 'PUT', path: (t) => r(t, 'app/manifests/huge'), headers: ct(MEDIA_TYPES.ociManifest), body: Buffer.concat([manifest.subarray(0, -1), Buffer.alloc(5 * 1024 * 1024, ' '), Buffer.from('}')]) },
    { name: 'PUT manifest that is not JSON', method: 'PUT', path: (t) => r(t, 'app/manifests/broken'), headers: ct(MEDIA_TYPES.ociManifest), body: 'not json' },
    { name: 'PUT manifest under a bad tag', method: 'PUT', path: (t) => r(t, 'app/manifests/-bad'), headers: ct(MEDIA_TYPES.ociManifest), body: manifest },
    { name: 'PUT manifest under a tag of 129 characters', method: 'PUT', path: (t) => r(t, `app/manifests/${'t'.repeat(129)}`), headers: ct(MEDIA_TYPES.ociManifest), body: manifest },
    { name: 'PUT manifest with a malformed digest', method: 'PUT', path: (t) => r(t, 'app/manifests/sha256:zz'), headers: ct(MEDIA_TYPES.ociManifest), body: manifest },

    // Content discovery
    { name: 'GET tags/list', method: 'GET', path: (t) => r(t, 'app/tags/list') },
    { name: 'GET tags/list?n=2', method: 'GET', path: (t) => r(t, 'app/tags/list?n=2') },
    { name: 'GET tags/list?n=2&last=pushed', method: 'GET', path: (t) => r(t, 'app/tags/list?n=2&last=pushed') },
    { name: 'GET tags/list?n=0', method: 'GET', path: (t) => r(t, 'app/tags/list?n=0') },
    { name: 'GET tags/list?n=x', method: 'GET', path: (t) => r(t, 'app/tags/list?n=x') },
    { name: 'GET tags/list of an unknown repository', method: 'GET', path: (t) => r(t, 'nothing/tags/list') },
    { name: 'GET _catalog', method: 'GET', path: () => '/v2/_catalog' },
    { name: 'GET _catalog?n=2', method: 'GET', path: () => '/v2/_catalog?n=2' },
    { name: 'GET _catalog?n=2&last=d/mounted', method: 'GET', path: () => '/v2/_catalog?n=2&last=d/mounted' },
    { name: 'GET referrers of a manifest', method: 'GET', path: (t) => r(t, `app/referrers/${image.manifestDigest}`) },
    { name: 'HEAD tags/list', method: 'HEAD', path: (t) => r(t, 'app/tags/list') },
    { name: 'HEAD _catalog', method: 'HEAD', path: () => '/v2/_catalog' },
    { name: 'GET _catalog?n=-1', method: 'GET', path: () => '/v2/_catalog?n=-1' },
    { name: 'GET _catalog?n=100000', method: 'GET', path: () => '/v2/_catalog?n=100000' },
    { name: 'GET referrers with ?artifactType=', method: 'GET', path: (t) => r(t, `app/referrers/${image.manifestDigest}?artifactType=application/x`) },
    { name: 'GET referrers with a malformed digest', method: 'GET', path: (t) => r(t, 'app/referrers/sha256:zz') },

    // Content management
    { name: 'GET the manifest to be deleted (the edge keeps it)', method: 'GET', path: (t) => r(t, `app/manifests/${gone.manifestDigest}`), headers: OCI },
    { name: 'GET the tag of the manifest to be deleted (the edge keeps it)', method: 'GET', path: (t) => r(t, 'app/manifests/gone'), headers: OCI },
    { name: 'GET the blob to be deleted (the edge keeps it)', method: 'GET', path: (t) => r(t, `app/blobs/${sha256Digest(mono)}`) },
    { name: 'DELETE manifest by tag', method: 'DELETE', path: (t) => r(t, 'app/manifests/v3') },
    { name: 'DELETE manifest by digest', method: 'DELETE', path: (t) => r(t, `app/manifests/${gone.manifestDigest}`) },
    { name: 'GET the deleted manifest by digest', method: 'GET', path: (t) => r(t, `app/manifests/${gone.manifestDigest}`), headers: OCI },
    { name: 'GET a tag of the deleted manifest', method: 'GET', path: (t) => r(t, 'app/manifests/gone'), headers: OCI },
    { name: 'DELETE manifest by digest again', method: 'DELETE', path: (t) => r(t, `app/manifests/${gone.manifestDigest}`) },
    { name: 'DELETE blob', method: 'DELETE', path: (t) => r(t, `app/blobs/${sha256Digest(mono)}`) },
    { name: 'HEAD the deleted blob', method: 'HEAD', path: (t) => r(t, `app/blobs/${sha256Digest(mono)}`) },
    { name: 'GET the deleted blob', method: 'GET', path: (t) => r(t, `app/blobs/${sha256Digest(mono)}`) },
    { name: 'DELETE blob absent', method: 'DELETE', path: (t) => r(t, `app/blobs/${absent}`) },
    { name: 'DELETE blob the edge has cached', method: 'DELETE', path: (t) => r(t, `other/blobs/${small.digest}`) },
    { name: 'GET the deleted blob the edge had cached', method: 'GET', path: (t) => r(t, `other/blobs/${small.digest}`) },

    // Malformed input
    { name: 'name in upper case', method: 'GET', path: () => '/v2/Upper/app/manifests/v1', headers: OCI },
    { name: 'name with .. segment', method: 'GET', path: (t) => `/v2/${t.ns}/x/../app/manifests/v1`, headers: OCI },
    { name: 'name with %2e%2e segment', method: 'GET', path: (t) => `/v2/${t.ns}/%2e%2e/app/manifests/v1`, headers: OCI },
    { name: 'name with %2F', method: 'GET', path: (t) => `/v2/${t.ns}%2Fapp/manifests/v1`, headers: OCI },
    { name: 'name with //', method: 'GET', path: (t) => `/v2/${t.ns}//app/manifests/v1`, headers: OCI },
    { name: 'name with a trailing separator', method: 'GET', path: () => '/v2/a-/manifests/v1', headers: OCI },
    { name: 'name with ___', method: 'GET', path: () => '/v2/a___b/manifests/v1', headers: OCI },
    { name: 'name of 255 characters', method: 'GET', path: () => `/v2/${'n'.repeat(255)}/manifests/v1`, headers: OCI },
    { name: 'name of 256 characters', method: 'GET', path: () => `/v2/${'n'.repeat(256)}/manifests/v1`, headers: OCI },
    { name: 'name with a percent-encoded letter', method: 'GET', path: (t) => `/v2/${t.ns}/%61pp/manifests/v1`, headers: OCI },
    { name: 'GET manifest with a bad tag', method: 'GET', path: (t) => r(t, 'app/manifests/-bad'), headers: OCI },
    { name: 'HEAD manifest with a bad tag', method: 'HEAD', path: (t) => r(t, 'app/manifests/-bad'), headers: OCI },
    { name: 'GET manifest with a tag of 129 characters', method: 'GET', path: (t) => r(t, `app/manifests/${'t'.repeat(129)}`), headers: OCI },
    { name: 'GET manifest with a percent-encoded tag', method: 'GET', path: (t) => r(t, 'app/manifests/v%31'), headers: OCI },
    { name: 'GET manifest with %20 in the tag', method: 'GET', path: (t) => r(t, 'app/manifests/a%20b'), headers: OCI },
    { name: 'GET manifest with a raw % in the tag', method: 'GET', path: (t) => r(t, 'app/manifests/bad%tag'), headers: OCI },
    { name: 'DELETE manifest with a bad tag', method: 'DELETE', path: (t) => r(t, 'app/manifests/.x') },
    { name: 'GET manifest with a malformed digest', method: 'GET', path: (t) => r(t, 'app/manifests/sha256:zz'), headers: OCI },
    { name: 'GET blob digest of 63 hex', method: 'GET', path: (t) => r(t, `app/blobs/sha256:${'a'.repeat(63)}`) },
    { name: 'GET blob digest in upper-case hex', method: 'GET', path: (t) => r(t, `app/blobs/sha256:${'A'.repeat(64)}`) },
    { name: 'GET blob digest of an unknown algorithm', method: 'GET', path: (t) => r(t, `app/blobs/md5:${'a'.repeat(32)}`) },
    { name: 'GET blob sha384 digest', method: 'GET', path: (t) => r(t, `app/blobs/sha384:${'a'.repeat(96)}`) },
    { name: 'GET blob that is no digest', method: 'GET', path: (t) => r(t, 'app/blobs/latest') },
    { name: 'DELETE blob with a malformed digest', method: 'DELETE', path: (t) => r(t, 'app/blobs/sha256:zz') },
    { name: 'unknown route under a repository', method: 'GET', path: (t) => r(t, 'app/unknown') },
    { name: 'the repository itself', method: 'GET', path: (t) => r(t, 'app') },
    { name: 'tags/list with a trailing slash', method: 'GET', path: (t) => r(t, 'app/tags/list/') },
    { name: '_catalog with more path', method: 'GET', path: () => '/v2/_catalog/x' },
    { name: '/v3/', method: 'GET', path: () => '/v3/' },
    { name: 'POST manifest', method: 'POST', path: (t) => r(t, 'app/manifests/v1'), body: '' },
    { name: 'PATCH blob', method: 'PATCH', path: (t) => r(t, `app/blobs/${small.digest}`), body: '' },
    { name: 'PUT /v2/', method: 'PUT', path: () => '/v2/', body: '' },
    { name: 'DELETE _catalog', method: 'DELETE', path: () => '/v2/_catalog' },
    { name: 'POST tags/list', method: 'POST', path: (t) => r(t, 'app/tags/list'), body: '' },
    { name: 'OPTIONS manifest', method: 'OPTIONS', path: (t) => r(t, 'app/manifests/v1') },
    { name: 'PROPFIND blob', method: 'PROPFIND', path: (t) => r(t, `app/blobs/${small.digest}`) },
    { name: 'GET on an upload session path without a session', method: 'GET', path: (t) => r(t, 'app/blobs/uploads/') },
  ];
}
