// The deploy tree as the tests read it: YAML documents, kustomizations, and overlays
// rendered by the real kustomize (kubectl's) in a temp copy with the files an operator
// makes (the TLS pair from `certs init`, the zone secret).
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAll } from 'js-yaml';
import { EDGE_BIN } from '../helpers/edge.js';
import { run, which } from '../helpers/proc.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const KUBE = path.join(ROOT, 'deploy/kubernetes');

/** A Kubernetes object as the tests read it: the fields they look at, the rest unknown. */
export interface Manifest {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: { readonly name: string; readonly namespace?: string; readonly labels?: Record<string, string> };
  readonly [field: string]: unknown;
}

export function yamlFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => /\.ya?ml$/.test(f))
    .map((f) => path.join(dir, f))
    .filter((f) => statSync(f).isFile())
    .sort();
}

export function parseDocs(text: string, where: string): Manifest[] {
  const docs = loadAll(text).filter((d) => d !== null && d !== undefined);
  for (const d of docs) assert.ok(typeof d === 'object' && typeof (d as Manifest).kind === 'string', `${where}: a document without kind`);
  return docs as Manifest[];
}

/** A copy of deploy/kubernetes under `work` with zone-a's operator-made files in place. */
export async function preparedTree(work: string): Promise<string> {
  const tree = path.join(work, 'kubernetes');
  cpSync(KUBE, tree, { recursive: true });
  const zone = path.join(tree, 'overlays/zone-a');
  const certs = await run(process.execPath, [EDGE_BIN, 'certs', 'init', '--hosts', 'registry-edge.zone-a.example,127.0.0.1', '--out', path.join(zone, 'tls')]);
  assert.equal(certs.code, 0, certs.stderr);
  writeFileSync(path.join(zone, 'zone-secret'), 'a-zone-secret-for-the-test\n');
  return tree;
}

/** `kubectl kustomize DIR`: kustomize v4 or later (components). Debian's kubernetes-client (1.20) bundles v2, which cannot. */
export async function render(dir: string): Promise<Manifest[]> {
  const kubectl = which('kubectl');
  assert.ok(kubectl, 'kubectl (with kustomize v5) is needed to render the manifests');
  const out = await run(kubectl, ['kustomize', dir], { timeoutMs: 60_000 });
  assert.equal(out.code, 0, `kubectl kustomize ${dir}: ${out.stderr}`);
  return parseDocs(out.stdout, dir);
}

export function only(docs: readonly Manifest[], kind: string, name?: string): Manifest {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  assert.equal(found.length, 1, `one ${kind}${name ? ` ${name}` : ''} in ${docs.map((d) => `${d.kind}/${d.metadata.name}`).join(', ')}`);
  return found[0] as Manifest;
}

export function readText(file: string): string {
  return readFileSync(file, 'utf8');
}
