// Every metric the Grafana dashboard and the PrometheusRule query is one a real edge
// exports: names read out of the PromQL by a small tokenizer, checked against the
// /metrics of an edge that has served a miss and a hit.
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { IPrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import { pushBlob, randomFile } from '../helpers/image.js';
import { httpRequest, waitFor } from '../helpers/proc.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { KUBE, ROOT, only, parseDocs, readText } from './kustomize.js';

/** PromQL words that are not metric names where they stand without a following "(". */
const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'offset', 'bool', 'and', 'or', 'unless', 'inf', 'nan']);
/** Labelled counters of faults only: a healthy edge has their # TYPE line and no sample. */
const FAULTS_ONLY = new Set(['registry_edge_digest_mismatches_total', 'registry_edge_uncaught_errors_total']);

/**
 * The metric names a PromQL expression selects. Strings, label matchers, ranges and
 * grouping lists hold label names and values (and Grafana's $variables), so they go
 * first; then numbers and durations are tokens of their own, and a word followed by "("
 * is a function or an aggregation.
 */
export function metricNames(expr: string): string[] {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names: string[] = [];
  for (const m of bare.matchAll(/\d+(?:\.\d+)?(?:e[+-]?\d+)?[a-z]*|[a-zA-Z_:][a-zA-Z0-9_:]*/gi)) {
    const word = m[0];
    if (/^\d/.test(word) || KEYWORDS.has(word.toLowerCase())) continue;
    if (bare.slice((m.index ?? 0) + word.length).trimStart().startsWith('(')) continue;
    names.push(word);
  }
  return names;
}

/** Labels Prometheus adds to every series from its Kubernetes target. */
const TARGET_LABELS = new Set(['namespace', 'pod', 'instance', 'job', 'le']);

/** The label names an expression matches on or groups by, per metric name (grouping: for every metric of the expression). */
export function labelsUsed(expr: string): Map<string, Set<string>> {
  const used = new Map<string, Set<string>>();
  const add = (metric: string, label: string): void => {
    if (!TARGET_LABELS.has(label)) used.set(metric, (used.get(metric) ?? new Set()).add(label));
  };
  const plain = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  for (const m of plain.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)) {
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)) add(m[1] ?? '', l[1] ?? '');
  }
  const metrics = metricNames(expr);
  for (const g of plain.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    const labels = (g[1] ?? '').split(',').map((l) => l.trim()).filter(Boolean);
    // A grouping label need only be on one metric of the expression (a ratio of two counters has it on both).
    for (const l of labels) if (!TARGET_LABELS.has(l) && !metrics.some((m) => used.get(m)?.has(l))) add(metrics.join('|'), l);
  }
  return used;
}

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

/** Every label an expression names is on the metric it names it for (or, for a grouping, on one of the expression's metrics). */
function assertLabelsExist(expr: string, metrics: Exported, where: string): void {
  for (const [metric, labels] of labelsUsed(expr)) {
    const candidates = metric.split('|');
    if (candidates.every((m) => FAULTS_ONLY.has(m))) continue;
    for (const l of labels) assert.ok(candidates.some((m) => metrics.labels.get(m)?.has(l)), `${where}: label ${l} of ${metric} is exported`);
  }
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

  test('the tokenizer reads metric names, not functions, labels, durations or Grafana variables', () => {
    assert.deepEqual(
      metricNames('histogram_quantile(0.99, sum by (le, route) (rate(a_bucket{route=~"blob|x",pod=~"$pod"}[$__rate_interval]))) / on (pod) group_left b offset 1d > bool 0.5 and c'),
      ['a_bucket', 'b', 'c'],
    );
    assert.deepEqual(metricNames('count(up == 0) or vector(0)'), ['up']);
    assert.deepEqual(
      [...labelsUsed('sum by (pod, source) (rate(a{kind="blob", result!~"x|y", pod=~"$pod"}[5m])) / sum by (source) (b)')].map(([m, l]) => [m, [...l]]),
      [['a', ['kind', 'result']], ['a|b', ['source']]],
    );
  });

  test('every metric the Grafana dashboard queries is exported by a running edge, with samples once it served', () => {
    const exprs = [...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...dashboard.templating.list.flatMap((v) => (v.query?.startsWith('label_values(') ? [v.query.slice('label_values('.length, -1).split(',')[0] ?? ''] : []))];
    assert.ok(dashboard.panels.length >= 10 && exprs.length >= 20, `${dashboard.panels.length} panels, ${exprs.length} queries`);
    const used = new Set(exprs.flatMap(metricNames));
    for (const want of ['registry_edge_cache_requests_total', 'registry_edge_upstream_up', 'registry_edge_fills_in_flight', 'registry_edge_fill_followers_total', 'registry_edge_stale_served_total', 'registry_edge_http_request_duration_seconds_bucket', 'registry_edge_served_bytes_total', 'registry_edge_upstream_received_bytes_total']) {
      assert.ok(used.has(want), `the dashboard shows ${want}`);
    }
    for (const name of used) {
      assert.ok(metrics.names.has(name), `${name} is exported by the edge`);
      if (!FAULTS_ONLY.has(name)) assert.ok(metrics.sampled.has(name), `${name} has samples after a miss and a hit`);
    }
    for (const p of dashboard.panels) for (const t of p.targets) assertLabelsExist(t.expr, metrics, p.title);
  });

  test('every metric the PrometheusRule alerts on is exported by a running edge', () => {
    const rules = (rule.spec.groups ?? []).flatMap((g) => g.rules ?? []);
    const alerts = rules.map((r) => r.alert);
    for (const want of ['RegistryEdgeUpstreamDown', 'RegistryEdgeHitRatioDrop', 'RegistryEdgeDigestMismatch', 'RegistryEdgeDiskNearBudget', 'RegistryEdgeStaleTagsServed']) assert.ok(alerts.includes(want), want);
    for (const r of rules) {
      const names = metricNames(String(r.expr));
      assert.ok(names.length > 0, `${r.alert} queries a metric`);
      for (const name of names) assert.ok(metrics.names.has(name), `${r.alert}: ${name} is exported by the edge`);
      assertLabelsExist(String(r.expr), metrics, String(r.alert));
    }
  });
});
