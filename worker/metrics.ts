/**
 * Metrics in the Prometheus text format (version 0.0.4) for `GET /metrics`: histograms each
 * run keeps of its tasks' durations and dispatch latencies, summed over runs, and the rendering
 * of gauges, counters and histograms. Pure; the route gathers the numbers.
 */

/** Upper bounds (seconds) of the histogram buckets; +Inf is implied. */
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;

/** Observations per bucket (not cumulative; the last entry is +Inf), their sum and count. */
export interface Histogram {
  buckets: number[];
  sum: number;
  count: number;
}

interface RunHistograms {
  /** How long attempts ran on their runners (as the runners measured). */
  duration: Histogram;
  /** From a task becoming ready to its dispatch. */
  latency: Histogram;
}

/** A run's histograms and the tasks the result cache served, as each run keeps them and the index sums them. */
export type RunMetrics = RunHistograms & { cacheHits: number };

export function emptyMetrics(): RunMetrics {
  return { duration: emptyHistogram(), latency: emptyHistogram(), cacheHits: 0 };
}

function emptyHistogram(): Histogram {
  return { buckets: new Array<number>(BUCKETS.length + 1).fill(0), sum: 0, count: 0 };
}

export function observe(h: Histogram, seconds: number): void {
  let i = BUCKETS.findIndex((le) => seconds <= le);
  if (i < 0) i = BUCKETS.length;
  h.buckets[i] = (h.buckets[i] ?? 0) + 1;
  h.sum += seconds;
  h.count++;
}

/** Adds `from` into `into`. */
export function merge(into: Histogram, from: Histogram): void {
  for (let i = 0; i <= BUCKETS.length; i++) into.buckets[i] = (into.buckets[i] ?? 0) + (from.buckets[i] ?? 0);
  into.sum += from.sum;
  into.count += from.count;
}

type Labels = Record<string, string>;

/** Builds the text of one scrape. */
export class Exposition {
  private readonly lines: string[] = [];

  private header(name: string, type: "gauge" | "counter" | "histogram", help: string): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  }

  /** A gauge or counter with one sample per label set. */
  metric(name: string, type: "gauge" | "counter", help: string, samples: [Labels, number][]): this {
    this.header(name, type, help);
    for (const [labels, value] of samples) this.lines.push(`${name}${labelText(labels)} ${formatNumber(value)}`);
    return this;
  }

  histogram(name: string, help: string, h: Histogram): this {
    this.header(name, "histogram", help);
    let cumulative = 0;
    BUCKETS.forEach((le, i) => {
      cumulative += h.buckets[i] ?? 0;
      this.lines.push(`${name}_bucket${labelText({ le: String(le) })} ${cumulative}`);
    });
    cumulative += h.buckets[BUCKETS.length] ?? 0;
    this.lines.push(
      `${name}_bucket${labelText({ le: "+Inf" })} ${cumulative}`,
      `${name}_sum ${formatNumber(h.sum)}`,
      `${name}_count ${h.count}`,
    );
    return this;
  }

  toString(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n")}"`,
  );
  return parts.length === 0 ? "" : `{${parts.join(",")}}`;
}

function formatNumber(n: number): string {
  return Number.isFinite(n) ? String(n) : n > 0 ? "+Inf" : n < 0 ? "-Inf" : "NaN";
}
