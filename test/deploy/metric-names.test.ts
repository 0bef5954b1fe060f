// Every metric the Grafana dashboard and the PrometheusRule query is one a real edge
// exports, with the labels they match on and group by: read out of the PromQL with
// Prometheus' grammar, checked against the /metrics of an edge that served a miss and a hit.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { IPrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { pushBlob, randomFile } from '../helpers/image.js';
import { httpRequest, waitFor } from '../helpers/proc.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { KUBE, ROOT, only, parseDocs, readText } from './kustomize.js';
import { readQuery } from './promql.js';

/** Labelled counters of faults only: a healthy edge has their # TYPE line and no sample. */
const FAULTS_ONLY = new Set(['registry_edge_digest_mismatches_total', 'registry_edge_uncaught_errors_total']);
/** Labels Prometheus adds to every series from its Kubernetes target, and the histogram's own. */
const TARGET_LABELS = new Set(['namespace', 'pod', 'instance', 'job', 'le']);

interface Exported {
  /** Every series name /metrics declares, histogram and summary series included. */
  readonly names: Set<string>;
  /** Names with at least one sample. */
  readonly sampled: Set<string>;
  /** The label names of each metric's samples. */
  readonly labels: Map<string, Set<string>>;
}

function exported(text: string): Exported {
  const names = new Set<string>();
  const sampled = new Set<string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (type) {
      const [, name = '', kind] = type;
      names.add(name);
      if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(name + s);
      if (kind === 'summary') for (const s of ['_sum', '_count']) names.add(name + s);
      continue;
    }
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? /.exec(line);
    if (!sample?.[1]) continue;
    sampled.add(sample[1]);
    const have = labels.get(sample[1]) ?? new Set<string>();
    for (const l of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) have.add(l[1] ?? '');
    labels.set(sample[1], have);
  }
  return { names, sampled, labels };
}

/** The expression's metrics are exported, and every label it matches on (on that metric) or groups by (on one of the metrics under the aggregation) is theirs. */
function assertExported(expr: string, metrics: Exported, where: string): string[] {
  const q = readQuery(expr);
  assert.ok(q.metrics.length > 0, `${where} queries a metric`);
  for (const name of q.metrics) assert.ok(metrics.names.has(name), `${where}: ${name} is exported by the edge`);
  const has = (ms: readonly string[], label: string): boolean => TARGET_LABELS.has(label) || ms.every((m) => FAULTS_ONLY.has(m)) || ms.some((m) => metrics.labels.get(m)?.has(label));
  for (const [metric, labels] of q.matched) for (const l of labels) assert.ok(has([metric], l), `${where}: ${metric} has the label ${l}`);
  for (const g of q.grouped) assert.ok(has(g.metrics, g.label), `${where}: one of ${g.metrics.join(', ')} has the label ${g.label}`);
  return [...q.metrics];
}

interface Dashboard {
  readonly panels: readonly { readonly title: string; readonly targets: readonly { readonly expr: string }[] }[];
  readonly templating: { readonly list: readonly { readonly query?: string }[] };
}

const dashboard = JSON.parse(readText(path.join(ROOT, 'deploy/grafana/registry-edge.json'))) as Dashboard;
const rule = only(parseDocs(readText(path.join(KUBE, 'components/monitoring/prometheusrule.yaml')), 'prometheusrule.yaml'), 'PrometheusRule') as unknown as IPrometheusRule;

describe('metric names in the dashboard and the alerts', () => {
  let stack: Stack;
  let metrics: Exported;

  before(async () => {
    stack = await startStack('re-deploy-metrics-');
    const file = path.join(stack.work, 'layer');
    await randomFile(file, 256 * 1024);
    const { digest } = await pushBlob(stack.registry.url, 'deploy/metrics', file);
    // A miss (a fill from the upstream), then a hit from the committed file.
    for (let i = 0; i < 2; i++) assert.equal((await httpRequest(`${stack.edge.url}/v2/deploy/metrics/blobs/${digest}`)).status, 200);
    // The fill is counted when it commits, which may be just after its client got the last byte.
    await waitFor(async () => (await stack.edge.metric('registry_edge_fills_total', { result: 'committed' })) === 1, { what: 'the fill to be committed' });
    metrics = exported((await httpRequest(`${stack.edge.adminUrl}/metrics`)).body.toString());
  });
  after(() => stack?.stop());

  test('queries are read with PromQL\'s grammar: metric names, matched and grouping labels; a syntax error is refused', () => {
    const q = readQuery('histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"blob|x",pod=~"$pod"}[$__rate_interval]))) / on (pod) group_left b offset 1d > bool 0.5 and count(c == 0) or vector(0)');
    assert.deepEqual(q.metrics, ['a_bucket', 'b', 'c']);
    assert.deepEqual([...q.matched].map(([m, l]) => [m, [...l]]), [['a_bucket', ['route', 'pod']]]);
    assert.deepEqual(q.grouped, [{ label: 'le', metrics: ['a_bucket'] }, { label: 'route', metrics: ['a_bucket'] }]);
    assert.throws(() => readQuery('sum(rate(a[5m])'), /not PromQL/);
  });

  test('every metric and label the Grafana dashboard queries is exported by a running edge, with samples once it served', () => {
    const queries = [
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => ({ expr: t.expr, where: p.title }))),
      ...dashboard.templating.list.flatMap((v) => (v.query?.startsWith('label_values(') ? [{ expr: v.query.slice('label_values('.length, -1).split(',')[0] ?? '', where: `variable ${v.query}` }] : [])),
    ];
    assert.ok(dashboard.panels.length >= 10 && queries.length >= 20, `${dashboard.panels.length} panels, ${queries.length} queries`);
    const used = new Set(queries.flatMap((q) => assertExported(q.expr, metrics, q.where)));
    for (const want of ['registry_edge_cache_requests_total', 'registry_edge_upstream_up', 'registry_edge_fills_in_flight', 'registry_edge_fill_followers_total', 'registry_edge_stale_served_total', 'registry_edge_http_request_duration_seconds_bucket', 'registry_edge_served_bytes_total', 'registry_edge_upstream_received_bytes_total']) {
      assert.ok(used.has(want), `the dashboard shows ${want}`);
    }
    for (const name of used) if (!FAULTS_ONLY.has(name)) assert.ok(metrics.sampled.has(name), `${name} has samples after a miss and a hit`);
  });

  test('every metric and label the PrometheusRule alerts on is exported by a running edge', () => {
    const rules = (rule.spec.groups ?? []).flatMap((g) => g.rules ?? []);
    const alerts = rules.map((r) => r.alert);
    for (const want of ['RegistryEdgeUpstreamDown', 'RegistryEdgeHitRatioDrop', 'RegistryEdgeDigestMismatch', 'RegistryEdgeDiskNearBudget', 'RegistryEdgeStaleTagsServed']) assert.ok(alerts.includes(want), want);
    for (const r of rules) assertExported(String(r.expr), metrics, String(r.alert));
  });
});
