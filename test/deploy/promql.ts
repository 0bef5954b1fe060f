// What a PromQL expression selects, read with Prometheus' own grammar (lezer-promql, the
// parser of the Prometheus UI): the metric names, and the labels it matches on or groups
// by. A syntax error is reported, not guessed around.
import { parser } from '@prometheus-io/lezer-promql';

type Node = ReturnType<typeof parser.parse>['topNode'];

/** Grafana's interval variables, which PromQL reads once Grafana has put a duration in their place. */
const GRAFANA_INTERVALS = /\$__(?:rate_interval|interval|range)\b/g;

export interface Query {
  /** Metric names of the vector selectors, in order. */
  readonly metrics: readonly string[];
  /** Labels matched on, by the selector's metric name. */
  readonly matched: ReadonlyMap<string, ReadonlySet<string>>;
  /** Labels an aggregation groups by, each with the metrics under that aggregation. */
  readonly grouped: readonly { readonly label: string; readonly metrics: readonly string[] }[];
}

function* walk(n: Node): Generator<Node> {
  yield n;
  for (let c = n.firstChild; c; c = c.nextSibling) yield* walk(c);
}

const childrenNamed = (n: Node, name: string): Node[] => {
  const out: Node[] = [];
  for (let c = n.firstChild; c; c = c.nextSibling) if (c.name === name) out.push(c);
  return out;
};

export function readQuery(expr: string): Query {
  const text = expr.replace(GRAFANA_INTERVALS, '5m');
  const top = parser.parse(text).topNode;
  const at = (n: Node): string => text.slice(n.from, n.to);
  const nodes = [...walk(top)];
  const broken = nodes.find((n) => n.type.isError);
  if (broken) throw new Error(`not PromQL at ${broken.from}: ${text.slice(Math.max(0, broken.from - 20), broken.to + 20)}`);
  const metricOf = (selector: Node): string | undefined => {
    const id = childrenNamed(selector, 'Identifier')[0];
    return id ? at(id) : undefined;
  };
  const metricsUnder = (n: Node): string[] => [...walk(n)].filter((x) => x.name === 'VectorSelector').flatMap((s) => metricOf(s) ?? []);
  const matched = new Map<string, Set<string>>();
  for (const m of nodes.filter((n) => n.name === 'UnquotedLabelMatcher')) {
    const metric = m.parent?.parent?.name === 'VectorSelector' ? metricOf(m.parent.parent) : undefined;
    const label = childrenNamed(m, 'LabelName')[0];
    if (metric && label) matched.set(metric, (matched.get(metric) ?? new Set()).add(at(label)));
  }
  const grouped = nodes
    .filter((n) => n.name === 'GroupingLabels' && n.parent?.name === 'AggregateModifier' && n.parent.parent)
    .flatMap((g) => childrenNamed(g, 'LabelName').map((l) => ({ label: at(l), metrics: metricsUnder(g.parent?.parent as Node) })));
  return { metrics: metricsUnder(top), matched, grouped };
}
