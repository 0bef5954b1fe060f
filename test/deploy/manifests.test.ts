// deploy/kubernetes as an operator uses it: every file parses, every path a kustomization
// names exists, the overlays render with kustomize, the objects validate against the
// Kubernetes schemas, and the workload agrees with the config it ships (ports, probes,
// mounts, shutdown), which a real edge then runs with.
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { load } from 'js-yaml';
import type { IContainer, IPodSpec } from 'kubernetes-models/v1';
import { ConfigMap, Namespace, Secret, Service, type IService } from 'kubernetes-models/v1';
import { DaemonSet, Deployment, StatefulSet, type IDaemonSet, type IStatefulSet } from 'kubernetes-models/apps/v1';
import { PodDisruptionBudget, type IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PrometheusRule, ServiceMonitor, type IServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { loadConfig } from '../../src/config/load.js';
import { KEYS, envName, type Config } from '../../src/config/schema.js';
import { connectionsThatFit } from '../../src/http/descriptors.js';
import { startEdge } from '../helpers/edge.js';
import { freePort, httpRequest, removeDir, tempDir } from '../helpers/proc.js';
import { KUBE, only, parseDocs, preparedTree, readText, render, yamlFiles, type Manifest } from './kustomize.js';

/** The zone.* keys the Redis component sets, as the zone branches name them. */
const ZONE_VARIABLES = ['REGISTRY_EDGE_ZONE_REDIS_URL', 'REGISTRY_EDGE_ZONE_PEER_ADDR', 'REGISTRY_EDGE_ZONE_PEER_URL', 'REGISTRY_EDGE_ZONE_SECRET'];
/** The descriptor limit the README tells operators to give the edge (containerd, CRI-O, docker --ulimit, systemd). */
const DESCRIPTOR_LIMIT = 65_536;
/** src/edge.ts ABORT_GRACE_MS: after http.shutdown_timeout, aborted fills get this long to clean up. */
const ABORT_GRACE_SECONDS = 2;

interface Validating {
  validate(): void;
}
const model = <T>(C: new (data: T) => Validating) => (doc: Manifest): Validating => new C(doc as unknown as T);
const MODELS: Record<string, (doc: Manifest) => Validating> = {
  'v1/Namespace': model(Namespace),
  'v1/ConfigMap': model(ConfigMap),
  'v1/Secret': model(Secret),
  'v1/Service': model(Service),
  'apps/v1/StatefulSet': model(StatefulSet),
  'apps/v1/Deployment': model(Deployment),
  'apps/v1/DaemonSet': model(DaemonSet),
  'policy/v1/PodDisruptionBudget': model(PodDisruptionBudget),
  'networking.k8s.io/v1/NetworkPolicy': model(NetworkPolicy),
  'monitoring.coreos.com/v1/ServiceMonitor': model(ServiceMonitor),
  'monitoring.coreos.com/v1/PrometheusRule': model(PrometheusRule),
};

/** kustomize folds a Secret's base64 at 70 columns; the API server's decoder skips the line breaks, the schema's "byte" format does not. */
function unfolded(doc: Manifest): Manifest {
  if (doc.kind !== 'Secret') return doc;
  const data = Object.fromEntries(Object.entries((doc as Manifest & { data: Record<string, string> }).data).map(([k, v]) => [k, v.replace(/\s+/g, '')]));
  return { ...doc, data };
}

const portOf = (addr: string): number => Number(addr.slice(addr.lastIndexOf(':') + 1));
const seconds = (s: number | undefined): number => s ?? 30;

function podOf(doc: Manifest): IPodSpec {
  const spec = (doc as unknown as IStatefulSet | IDaemonSet).spec?.template.spec;
  assert.ok(spec, `${doc.kind} ${doc.metadata.name} has a pod template`);
  return spec;
}

function edgeContainer(pod: IPodSpec): IContainer {
  const c = pod.containers.find((x) => x.name === 'registry-edge');
  assert.ok(c, 'a container named registry-edge');
  return c;
}

/** The edge's config as the ConfigMap ships it, loaded by the edge's own loader (defaults applied, every value validated). */
function shippedConfig(docs: readonly Manifest[], work: string): { config: Config; text: string; key: string; configMap: string } {
  const cm = only(docs, 'ConfigMap') as Manifest & { data: Record<string, string> };
  const [key, text] = Object.entries(cm.data)[0] ?? [];
  assert.ok(key && text, 'the ConfigMap holds the config file');
  const file = path.join(work, `${cm.metadata.name}.yaml`);
  writeFileSync(file, text);
  return { config: loadConfig({ file, env: {} }), text, key, configMap: cm.metadata.name };
}

function mountOf(container: IContainer, pod: IPodSpec, volume: (v: NonNullable<IPodSpec['volumes']>[number]) => boolean): string {
  const v = pod.volumes?.find(volume);
  assert.ok(v, 'the volume is in the pod');
  const m = container.volumeMounts?.find((x) => x.name === v.name);
  assert.ok(m, `volume ${v.name} is mounted`);
  return m.mountPath;
}

/** Validates every object against its schema; the kinds seen. */
function assertValid(docs: readonly Manifest[]): Set<string> {
  const kinds = new Set<string>();
  for (const doc of docs) {
    const id = `${doc.apiVersion}/${doc.kind}`;
    const validator = MODELS[id];
    assert.ok(validator, `a schema for ${id}`);
    assert.doesNotThrow(() => validator(unfolded(doc)).validate(), `${id} ${doc.metadata.name}`);
    kinds.add(doc.kind);
  }
  return kinds;
}

/** What every edge workload must agree with in its config: ports, probes, mounts, shutdown, hardening. */
function assertAgreesWithConfig(docs: readonly Manifest[], workload: Manifest, config: Config, key: string, configMap: string): void {
  const pod = podOf(workload);
  const c = edgeContainer(pod);
  const port = (name: string): number | undefined => c.ports?.find((p) => p.name === name)?.containerPort;
  assert.equal(port('https'), portOf(config.http.addr), 'the client port is http.addr');
  assert.equal(port('admin'), portOf(config.admin.addr), 'the admin port is admin.addr');
  assert.match(config.admin.addr, /^0\.0\.0\.0:/, 'the admin listener takes the kubelet\'s probes from outside the pod');

  assert.deepEqual(
    [c.startupProbe, c.livenessProbe, c.readinessProbe].map((p) => [p?.httpGet?.path, p?.httpGet?.port]),
    [['/healthz', 'admin'], ['/healthz', 'admin'], ['/readyz', 'admin']],
  );
  assert.ok((c.readinessProbe?.timeoutSeconds ?? 1) > 2, '/readyz may take the 2 s it gives the upstream check');

  const configDir = mountOf(c, pod, (v) => v.configMap?.name === configMap);
  assert.deepEqual(c.args, ['serve', '--config', path.posix.join(configDir, key)]);
  const cacheMount = c.volumeMounts?.find((m) => m.mountPath === config.cache.dir);
  assert.ok(cacheMount, `cache.dir ${config.cache.dir} is a volume`);
  const tlsDir = mountOf(c, pod, (v) => v.secret?.secretName?.startsWith('registry-edge-tls') === true);
  assert.equal(path.posix.dirname(config.http.tls.certificate), tlsDir);
  assert.equal(path.posix.dirname(config.http.tls.key), tlsDir);
  const tls = only(docs, 'Secret', pod.volumes?.find((v) => v.secret?.secretName?.startsWith('registry-edge-tls'))?.secret?.secretName) as Manifest & { type: string; data: Record<string, string> };
  assert.equal(tls.type, 'kubernetes.io/tls');
  assert.deepEqual(Object.keys(tls.data).sort(), [path.posix.basename(config.http.tls.certificate), path.posix.basename(config.http.tls.key)].sort());
  assert.ok(c.volumeMounts?.some((m) => m.mountPath === '/tmp'), 'a writable /tmp under a read-only root');

  const preStop = c.lifecycle?.preStop?.exec?.command;
  const pause = preStop?.[0] === 'sleep' ? Number(preStop[1]) : 0;
  assert.ok(seconds(pod.terminationGracePeriodSeconds) > pause + config.http.shutdown_timeout + ABORT_GRACE_SECONDS, 'the kill grace covers the preStop pause and the drain');

  assert.equal(pod.securityContext?.runAsNonRoot, true);
  assert.equal(pod.securityContext?.seccompProfile?.type, 'RuntimeDefault');
  assert.equal(c.securityContext?.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext?.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext?.capabilities?.drop, ['ALL']);
  assert.equal(c.securityContext?.capabilities?.add, undefined);
  assert.ok(c.resources?.requests?.cpu && c.resources.requests.memory && c.resources.limits?.memory, 'requests and a memory limit');

  const known = new Set([...KEYS.map((k) => envName(k.path)), ...ZONE_VARIABLES]);
  for (const e of c.env ?? []) if (e.name.startsWith('REGISTRY_EDGE_')) assert.ok(known.has(e.name), `${e.name} names a config key`);

  assert.ok(connectionsThatFit(DESCRIPTOR_LIMIT, { keptFiles: config.cache.open_files, upstreamSockets: config.upstream.connections * (config.upstreams.length + 1) }) >= config.http.max_connections, `http.max_connections ${config.http.max_connections} fits a descriptor limit of ${DESCRIPTOR_LIMIT}`);
}

/** Services select the pods they mean to, and name ports the pods have. */
function assertServicesReachPods(docs: readonly Manifest[], workload: Manifest): void {
  const pod = podOf(workload);
  const labels = (workload as unknown as IStatefulSet).spec?.template.metadata?.labels ?? {};
  const portNames = new Set(edgeContainer(pod).ports?.map((p) => p.name));
  const services = docs.filter((d) => d.kind === 'Service' && d.metadata.name.startsWith('registry-edge') && d.metadata.name !== 'registry-edge-redis') as unknown as IService[];
  for (const s of services) {
    for (const [k, v] of Object.entries(s.spec?.selector ?? {})) assert.equal(labels[k], v, `Service ${s.metadata?.name} selects the edge pods`);
    for (const p of s.spec?.ports ?? []) assert.ok(portNames.has(String(p.targetPort)), `Service ${s.metadata?.name} port ${p.name} targets a port of the pod`);
  }
  const client = services.find((s) => s.metadata?.name === 'registry-edge');
  assert.deepEqual(client?.spec?.ports?.map((p) => p.targetPort), ['https'], 'the client Service has the registry port alone, never the admin port');
}

describe('deploy/kubernetes', () => {
  let work: string;
  let tree: string;
  let zoneA: Manifest[];

  before(async () => {
    work = tempDir('re-deploy-');
    tree = await preparedTree(work);
    zoneA = await render(path.join(tree, 'overlays/zone-a'));
  });
  after(() => removeDir(work));

  test('every YAML file parses (the edge configs load with the edge\'s own loader), and every file a kustomization names exists', () => {
    const files = yamlFiles(KUBE);
    assert.ok(files.length >= 15, `the manifests are there (${files.length})`);
    const configs = files.filter((f) => path.basename(f) === 'registry-edge.yaml');
    assert.equal(configs.length, 2, 'the base config and the zone-a one');
    for (const file of configs) assert.doesNotThrow(() => loadConfig({ file, env: {} }), file);
    for (const file of files.filter((f) => !configs.includes(f))) {
      const docs = parseDocs(readText(file), file);
      assert.ok(docs.length >= 1, `${file} holds a document`);
      for (const doc of docs) {
        if (!/kustomization\.yaml$/.test(file)) continue;
        const k = doc as Manifest & { resources?: string[]; components?: string[]; patches?: { path: string }[]; configMapGenerator?: { files?: string[] }[] };
        const named = [...(k.resources ?? []), ...(k.components ?? []), ...(k.patches ?? []).map((p) => p.path), ...(k.configMapGenerator ?? []).flatMap((g) => g.files ?? [])];
        assert.ok(named.length > 0, `${file} names something`);
        for (const rel of named) assert.ok(existsSync(path.join(path.dirname(file), rel)), `${file}: ${rel} exists`);
      }
    }
  });

  test('zone-a renders: its namespace, replicas, image and config, the Redis component\'s zone keys, monitoring', () => {
    const ns = only(zoneA, 'Namespace').metadata.name;
    for (const d of zoneA) if (d.kind !== 'Namespace') assert.equal(d.metadata.namespace, ns, `${d.kind}/${d.metadata.name} is in the zone's namespace`);
    const sts = only(zoneA, 'StatefulSet') as unknown as IStatefulSet;
    assert.equal(sts.spec?.replicas, 3);
    assert.equal(sts.spec?.serviceName, 'registry-edge-internal');
    const internal = only(zoneA, 'Service', 'registry-edge-internal') as unknown as IService;
    assert.equal(internal.spec?.clusterIP, 'None', 'headless: a name per replica');
    assert.equal(sts.spec?.volumeClaimTemplates?.[0]?.spec?.resources?.requests?.storage, '200Gi');
    const c = edgeContainer(podOf(only(zoneA, 'StatefulSet')));
    assert.equal(c.image, 'registry.centre.example/platform/registry-edge:0.1.0');
    assert.equal(c.resources?.requests?.cpu, '2');

    const { config } = shippedConfig(zoneA, work);
    assert.deepEqual(config.upstreams.map((u) => [u.url, u.backup]), [['https://registry-1.centre.example', false], ['https://registry-2.centre.example', false], ['https://registry-3.centre.example', true]]);
    assert.ok(config.cache.maxsize < 200 * 1024 ** 3, 'cache.maxsize leaves room on the 200Gi volume for tags/ and membership.log');

    const env = new Map((c.env ?? []).map((e) => [e.name, e]));
    assert.deepEqual(ZONE_VARIABLES.filter((n) => env.has(n)), ZONE_VARIABLES);
    const peerPort = c.ports?.find((p) => p.name === 'peer')?.containerPort;
    assert.equal(portOf(env.get('REGISTRY_EDGE_ZONE_PEER_ADDR')?.value ?? ''), peerPort);
    assert.equal(env.get('REGISTRY_EDGE_ZONE_PEER_URL')?.value, `http://$(POD_NAME).${sts.spec?.serviceName}.$(POD_NAMESPACE).svc:${peerPort}`);
    assert.deepEqual(['POD_NAME', 'POD_NAMESPACE'].map((n) => env.get(n)?.valueFrom?.fieldRef?.fieldPath), ['metadata.name', 'metadata.namespace']);
    const secretRef = env.get('REGISTRY_EDGE_ZONE_SECRET')?.valueFrom?.secretKeyRef;
    const zoneSecret = only(zoneA, 'Secret', secretRef?.name) as Manifest & { data: Record<string, string> };
    assert.ok(zoneSecret.data[secretRef?.key ?? ''], 'zone.secret comes from the generated Secret');
    const redis = only(zoneA, 'Service', 'registry-edge-redis') as unknown as IService;
    assert.equal(env.get('REGISTRY_EDGE_ZONE_REDIS_URL')?.value, `redis://${redis.metadata?.name}:${redis.spec?.ports?.[0]?.port}`);
    assert.ok(internal.spec?.ports?.some((p) => p.targetPort === 'peer'), 'peers reach each other on the headless Service');

    const pdb = only(zoneA, 'PodDisruptionBudget') as unknown as IPodDisruptionBudget;
    assert.deepEqual(pdb.spec?.selector?.matchLabels, sts.spec?.selector.matchLabels);
    const monitor = only(zoneA, 'ServiceMonitor') as unknown as IServiceMonitor;
    const scraped = zoneA.filter((d) => d.kind === 'Service' && Object.entries(monitor.spec.selector.matchLabels ?? {}).every(([k, v]) => d.metadata.labels?.[k] === v)) as unknown as IService[];
    assert.deepEqual(scraped.map((s) => s.metadata?.name), ['registry-edge-internal']);
    assert.ok(scraped[0]?.spec?.ports?.some((p) => p.name === monitor.spec.endpoints?.[0]?.port), 'the ServiceMonitor scrapes a port of the Service');
    only(zoneA, 'PrometheusRule');
  });

  test('the zone-a edge agrees with the config it ships: ports, probes, mounts, shutdown, hardening, descriptors', () => {
    const { config, key, configMap } = shippedConfig(zoneA, work);
    const sts = only(zoneA, 'StatefulSet');
    assertAgreesWithConfig(zoneA, sts, config, key, configMap);
    assertServicesReachPods(zoneA, sts);
    const cache = (sts as unknown as IStatefulSet).spec?.volumeClaimTemplates?.[0]?.metadata?.name;
    assert.ok(edgeContainer(podOf(sts)).volumeMounts?.some((m) => m.name === cache && m.mountPath === config.cache.dir), 'cache.dir is the per-replica volume');
  });

  test('the node-local variant renders (and validates) a DaemonSet on the node\'s disk in place of the StatefulSet, host network optional', async () => {
    const overlay = path.join(tree, 'overlays/node-local');
    mkdirSync(overlay);
    const kustomization = (components: string[]): string => [
      'resources: [../../base]',
      `components: [${components.map((c) => `../../components/${c}`).join(', ')}]`,
      'secretGenerator:',
      '  - {name: registry-edge-tls, type: kubernetes.io/tls, files: [tls.crt=tls/server.crt, tls.key=tls/server.key]}',
      'generatorOptions: {disableNameSuffixHash: true}',
      '',
    ].join('\n');
    // kustomize reads generator files only below the kustomization: the overlay's own copy.
    cpSync(path.join(tree, 'overlays/zone-a/tls'), path.join(overlay, 'tls'), { recursive: true });
    writeFileSync(path.join(overlay, 'kustomization.yaml'), kustomization(['node-local']));
    const docs = await render(overlay);
    assertValid(docs);
    assert.deepEqual(docs.filter((d) => ['StatefulSet', 'PodDisruptionBudget', 'Deployment'].includes(d.kind)), []);
    const ds = only(docs, 'DaemonSet');
    const { config, key, configMap } = shippedConfig(docs, work);
    assertAgreesWithConfig(docs, ds, config, key, configMap);
    assertServicesReachPods(docs, ds);
    const pod = podOf(ds);
    assert.equal(mountOf(edgeContainer(pod), pod, (v) => v.hostPath !== undefined), config.cache.dir);
    assert.equal(edgeContainer(pod).ports?.find((p) => p.name === 'https')?.hostPort, portOf(config.http.addr));
    assert.equal((only(docs, 'Service', 'registry-edge') as unknown as IService).spec?.internalTrafficPolicy, 'Local');
    assert.equal(pod.hostNetwork, undefined);
    const owner = pod.initContainers?.[0];
    assert.deepEqual(owner?.securityContext?.capabilities, { drop: ['ALL'], add: ['CHOWN'] }, 'the one root step holds CAP_CHOWN alone');

    writeFileSync(path.join(overlay, 'kustomization.yaml'), kustomization(['node-local', 'node-local-host-network']));
    const hostNetwork = await render(overlay);
    assertValid(hostNetwork);
    const onHost = podOf(only(hostNetwork, 'DaemonSet'));
    assert.equal(onHost.hostNetwork, true);
    assert.equal(onHost.dnsPolicy, 'ClusterFirstWithHostNet');
  });

  test('every rendered object validates against the Kubernetes (and Prometheus Operator) schemas', () => {
    const kinds = assertValid(zoneA);
    assert.ok(kinds.size >= 10, [...kinds].join(', '));
    const broken = structuredClone(only(zoneA, 'StatefulSet')) as unknown as { spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } } };
    (broken.spec.template.spec.containers[0] as { ports: { containerPort: unknown }[] }).ports[0] = { containerPort: 'five thousand' };
    assert.throws(() => model(StatefulSet)(broken as unknown as Manifest).validate(), /containerPort/);
  });

  test('a real edge runs the zone\'s config: TLS from the mounted pair, the probe paths answer on the admin listener, ready with the centre down, not ready without its cache volume', async () => {
    const { text } = shippedConfig(zoneA, work);
    const tls = path.join(tree, 'overlays/zone-a/tls');
    const edgeWork = path.join(work, 'edge');
    mkdirSync(edgeWork);
    const edge = await startEdge({
      workDir: edgeWork,
      configYaml: text,
      // The centre of the overlay is not on this machine: a closed loopback port stands for it being down.
      upstreams: [`http://127.0.0.1:${await freePort()}`],
      env: { REGISTRY_EDGE_HTTP_TLS_CERTIFICATE: path.join(tls, 'server.crt'), REGISTRY_EDGE_HTTP_TLS_KEY: path.join(tls, 'server.key') },
    });
    try {
      assert.ok(edge.url.startsWith('https://'), 'TLS from the mounted pair');
      const pod = podOf(only(zoneA, 'StatefulSet'));
      const c = edgeContainer(pod);
      for (const probe of [c.startupProbe, c.livenessProbe, c.readinessProbe]) {
        const res = await httpRequest(`${edge.adminUrl}${probe?.httpGet?.path ?? ''}`);
        assert.equal(res.status, 200, `${probe?.httpGet?.path} on the admin listener`);
      }
      const ready = await httpRequest(`${edge.adminUrl}/readyz`);
      assert.deepEqual(load(ready.body.toString()), { ready: true, cache: true, upstream: false });
      // A fault of this replica alone, its volume gone: out of the Service until it is back.
      renameSync(edge.cacheDir, `${edge.cacheDir}.gone`);
      const lost = await httpRequest(`${edge.adminUrl}/readyz`);
      assert.equal(lost.status, 503);
      assert.equal((load(lost.body.toString()) as { ready: boolean }).ready, false);
      renameSync(`${edge.cacheDir}.gone`, edge.cacheDir);
      assert.equal((await httpRequest(`${edge.adminUrl}/readyz`)).status, 200);
    } finally {
      await edge.stop();
    }
  });
});
