/**
 * A small Prometheus metrics registry: counters, gauges and histograms with fixed label names,
 * rendered in the text exposition format (0.0.4). Hot-path updates are a Map lookup and an add;
 * label values are bounded by the callers (connection names from the config, verbs, effects).
 */

/** Label values in the order of the metric's label names. */
type LabelValues = readonly string[];

interface MetricBase {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  /** Appends this metric's exposition lines. */
  render(out: string[]): void;
}

/** Prometheus metric and label names. */
const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(names: readonly string[], values: LabelValues, extra?: string): string {
  const parts: string[] = [];
  for (let i = 0; i < names.length; i++) parts.push(`${names[i]!}="${escapeLabel(values[i] ?? '')}"`);
  if (extra !== undefined) parts.push(extra);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function formatNumber(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

// A key for a label-value tuple; \u0001 cannot appear in a sensible label value.
function keyOf(values: LabelValues): string {
  return values.length === 1 ? values[0]! : values.join('\u0001');
}

/** A monotonically increasing count. */
export class Counter implements MetricBase {
  private readonly series = new Map<string, { values: LabelValues; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {
    // A metric without labels is exported as 0 from the start, so rate() and alerts see it.
    if (labelNames.length === 0) this.inc([], 0);
  }

  /** Adds `by` (default 1) to the series with these label values. */
  inc(values: LabelValues = [], by = 1): void {
    const key = keyOf(values);
    const s = this.series.get(key);
    if (s === undefined) this.series.set(key, { values: [...values], value: by });
    else s.value += by;
  }

  /** The current value of one series (0 when never incremented). */
  get(values: LabelValues = []): number {
    return this.series.get(keyOf(values))?.value ?? 0;
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`);
    for (const s of this.series.values()) out.push(`${this.name}${labelText(this.labelNames, s.values)} ${formatNumber(s.value)}`);
  }
}

/** A value that goes up and down. */
export class Gauge implements MetricBase {
  private readonly series = new Map<string, { values: LabelValues; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly string[] = [],
  ) {
    if (labelNames.length === 0) this.set([], 0);
  }

  set(values: LabelValues, value: number): void {
    const key = keyOf(values);
    const s = this.series.get(key);
    if (s === undefined) this.series.set(key, { values: [...values], value });
    else s.value = value;
  }

  inc(values: LabelValues = [], by = 1): void {
    this.set(values, this.get(values) + by);
  }

  dec(values: LabelValues = [], by = 1): void {
    this.set(values, this.get(values) - by);
  }

  get(values: LabelValues = []): number {
    return this.series.get(keyOf(values))?.value ?? 0;
  }

  /** Forgets one series (e.g. a consumer that no longer exists). */
  remove(values: LabelValues): void {
    this.series.delete(keyOf(values));
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`);
    for (const s of this.series.values()) out.push(`${this.name}${labelText(this.labelNames, s.values)} ${formatNumber(s.value)}`);
  }
}

interface HistogramSeries {
  values: LabelValues;
  counts: number[];
  sum: number;
  count: number;
}

/** Observations counted into cumulative buckets (`_bucket{le}`, `_sum`, `_count`). */
export class Histogram implements MetricBase {
  private readonly series = new Map<string, HistogramSeries>();
  readonly buckets: readonly number[];
  constructor(
    readonly name: string,
    readonly help: string,
    buckets: readonly number[],
    readonly labelNames: readonly string[] = [],
  ) {
    if (buckets.length === 0) throw new Error(`${name}: a histogram needs buckets`);
    for (let i = 1; i < buckets.length; i++) {
      if (buckets[i]! <= buckets[i - 1]!) throw new Error(`${name}: buckets must increase`);
    }
    this.buckets = [...buckets];
    if (labelNames.length === 0) this.series.set('', { values: [], counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 });
  }

  observe(values: LabelValues, value: number): void {
    const key = keyOf(values);
    let s = this.series.get(key);
    if (s === undefined) {
      s = { values: [...values], counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.series.set(key, s);
    }
    // Per-bucket (non-cumulative) counts; render() accumulates.
    let i = 0;
    while (i < this.buckets.length && value > this.buckets[i]!) i++;
    if (i < this.buckets.length) s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  /** Count and sum of one series. */
  get(values: LabelValues = []): { count: number; sum: number } {
    const s = this.series.get(keyOf(values));
    return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
  }

  render(out: string[]): void {
    out.push(`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`);
    for (const s of this.series.values()) {
      let cumulative = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        cumulative += s.counts[i]!;
        out.push(`${this.name}_bucket${labelText(this.labelNames, s.values, `le="${formatNumber(this.buckets[i]!)}"`)} ${cumulative}`);
      }
      out.push(`${this.name}_bucket${labelText(this.labelNames, s.values, 'le="+Inf"')} ${s.count}`);
      out.push(`${this.name}_sum${labelText(this.labelNames, s.values)} ${formatNumber(s.sum)}`);
      out.push(`${this.name}_count${labelText(this.labelNames, s.values)} ${s.count}`);
    }
  }
}

/** Runs before each scrape, to refresh gauges whose source is elsewhere (consumer lag, memory). */
export type Collector = () => Promise<void> | void;

/** One process's metrics; rendered at `/metrics`. */
export class MetricsRegistry {
  private readonly metrics = new Map<string, MetricBase>();
  private readonly collectors: Collector[] = [];

  counter(name: string, help: string, labelNames: readonly string[] = []): Counter {
    return this.add(new Counter(name, help, labelNames));
  }

  gauge(name: string, help: string, labelNames: readonly string[] = []): Gauge {
    return this.add(new Gauge(name, help, labelNames));
  }

  histogram(name: string, help: string, buckets: readonly number[], labelNames: readonly string[] = []): Histogram {
    return this.add(new Histogram(name, help, buckets, labelNames));
  }

  /** Adds a collector run before every render; a failing collector is skipped, not fatal. */
  collect(collector: Collector): void {
    this.collectors.push(collector);
  }

  /** The registered metric named `name`, if any. */
  find(name: string): MetricBase | undefined {
    return this.metrics.get(name);
  }

  /** The exposition text (Content-Type `text/plain; version=0.0.4`). */
  async render(): Promise<string> {
    await Promise.allSettled(this.collectors.map(async (c) => c()));
    const out: string[] = [];
    for (const m of this.metrics.values()) m.render(out);
    return `${out.join('\n')}\n`;
  }

  private add<M extends MetricBase>(metric: M): M {
    if (!NAME.test(metric.name)) throw new Error(`invalid metric name ${JSON.stringify(metric.name)}`);
    for (const l of metric.labelNames) {
      if (!LABEL.test(l) || l.startsWith('__') || l === 'le') throw new Error(`${metric.name}: invalid label name ${JSON.stringify(l)}`);
    }
    if (this.metrics.has(metric.name)) throw new Error(`metric ${metric.name} is registered twice`);
    this.metrics.set(metric.name, metric);
    return metric;
  }
}

/** Content type of the exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
