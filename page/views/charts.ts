/**
 * The drawings of one run, as SVG built from data: the DAG laid out in layers with each node's
 * state and progress, the timeline of attempts per device, and the chart of tasks finished per
 * second over the whole run. Used by run.ts.
 */
import type { NodeView, TimelineView } from "../../core/api.js";
import { formatDuration } from "../../core/units.js";
import { el, svg } from "../lib.js";

/** The state a node is drawn in: the most telling of its instances' states. */
function nodeState(counts: NodeView["counts"], total: number): string {
  if (counts.failed) return "failed";
  if ((counts.succeeded ?? 0) === total) return "succeeded";
  for (const s of ["leased", "ready", "backoff", "lookup", "cancelled", "skipped"] as const) if (counts[s]) return s;
  return "blocked";
}

/** Layers by longest path from the roots, so every edge points right. */
function layout(nodes: NodeView[]) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map<string, number>();
  const level = (n: NodeView): number => {
    if (!depth.has(n.id))
      depth.set(n.id, n.deps.length === 0 ? 0 : 1 + Math.max(...n.deps.map((d) => level(byId.get(d)!))));
    return depth.get(n.id)!;
  };
  const layers: NodeView[][] = [];
  for (const n of nodes) (layers[level(n)] ??= []).push(n);
  const [W, H, GX, GY] = [170, 62, 50, 18];
  const pos = new Map<string, { x: number; y: number }>();
  layers.forEach((layer, x) => layer.forEach((n, y) => pos.set(n.id, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const tall = Math.max(...layers.map((l) => l.length));
  return { pos, W, H, width: 20 + layers.length * (W + GX) - GX, height: 20 + tall * (H + GY) - GY };
}

/** The DAG, each node with its state and how many of its instances succeeded. */
export function graph(nodes: NodeView[]): SVGElement {
  const { pos, W, H, width, height } = layout(nodes);
  const edges = nodes.flatMap((n) =>
    n.deps.map((d) => {
      const a = pos.get(d)!;
      const b = pos.get(n.id)!;
      const [x1, y1, x2, y2] = [a.x + W, a.y + H / 2, b.x, b.y + H / 2];
      return svg("path", { class: "edge", d: `M${x1},${y1} C${x1 + 25},${y1} ${x2 - 25},${y2} ${x2},${y2}` });
    }),
  );
  // A map over data with no instances is done once its dependencies are, and never before
  // (nodes come in dependency order).
  const states = new Map<string, string>();
  for (const n of nodes) {
    const total = n.instances ?? 1;
    const deps = n.deps.map((d) => states.get(d));
    const empty = deps.some((s) => s === "failed" || s === "skipped")
      ? "skipped"
      : deps.every((s) => s === "succeeded")
        ? "succeeded"
        : "blocked";
    states.set(n.id, total === 0 ? empty : nodeState(n.counts, total));
  }
  const boxes = nodes.map((n) => {
    const { x, y } = pos.get(n.id)!;
    const total = n.instances ?? 1;
    const done = n.counts.succeeded ?? 0;
    const state = states.get(n.id)!;
    const label = n.instances === null ? state : `${done}/${total} · ${state}`;
    return svg(
      "g",
      { class: `node ${state}`, "data-node": n.id, "data-state": state, transform: `translate(${x},${y})` },
      svg("rect", { width: W, height: H, rx: 8 }),
      svg("text", { x: 10, y: 22, class: "name" }, n.id),
      svg("text", { x: 10, y: 40, class: "sub" }, label),
      svg("rect", { class: "track", x: 10, y: 48, width: W - 20, height: 5, rx: 2 }),
      svg("rect", {
        class: "fill",
        x: 10,
        y: 48,
        width: total === 0 ? 0 : ((W - 20) * done) / total,
        height: 5,
        rx: 2,
      }),
    );
  });
  return svg(
    "svg",
    { class: "graph", viewBox: `0 0 ${width} ${height}`, width, height, role: "img", "aria-label": "the DAG" },
    edges,
    boxes,
  );
}

/** Tasks finished per bucket over the whole run, as columns with their scale. */
export function throughputChart(t: TimelineView): Element {
  const total = t.finished.reduce((a, b) => a + b, 0);
  if (total === 0) return el("p", { class: "hint" }, "Throughput appears as tasks finish.");
  const perSecond = t.finished.map((n) => n / (t.bucket_ms / 1000));
  const max = Math.max(...perSecond);
  const [w, h] = [600, 120];
  const step = w / perSecond.length;
  const columns = perSecond.map((v, i) =>
    svg("rect", {
      class: "column",
      x: i * step,
      y: h - (v / max) * (h - 14),
      width: Math.max(0.5, step * 0.9),
      height: (v / max) * (h - 14),
    }),
  );
  // The run's own length (to now while it runs), not the buckets' (the last one is a part).
  const span = Math.max(0, (t.finished_at ?? Date.now()) - t.created_at);
  const top = max >= 10 ? Math.round(max) : Number(max.toFixed(1));
  return svg(
    "svg",
    {
      class: "chart",
      viewBox: `0 0 ${w} ${h + 16}`,
      preserveAspectRatio: "none",
      role: "img",
      "aria-label": `${total} tasks finished over the run's ${formatDuration(span)}, at most ${top} a second`,
      "data-span-ms": span,
    },
    columns,
    svg("text", { x: 4, y: 12 }, `${top} tasks/s`),
    svg("text", { x: 4, y: h + 14 }, "0s"),
    svg("text", { x: w - 4, y: h + 14, "text-anchor": "end", class: "span" }, formatDuration(span)),
  );
}

/**
 * One lane per device that ran an attempt (the result cache and a linked run's reuse included),
 * each attempt a bar from its start to its end (to now while it runs), coloured by outcome, with
 * a tooltip naming the task, the attempt and how long it took. Attempts that overlap on a device
 * (its slots, and what it held beyond them) stack in tracks of its lane.
 */
export function timeline(t: TimelineView, now: number): Element {
  if (t.attempts.length === 0) return el("p", { class: "hint" }, "No attempt yet.");
  const end = Math.max(t.finished_at ?? now, ...t.attempts.map((a) => a.ended_at ?? now));
  const span = Math.max(1, end - t.created_at);
  const devices = [...new Set(t.attempts.map((a) => a.runner_name))].sort();
  const [label, w, track] = [150, 900, 12];
  const x = (ms: number) => label + ((ms - t.created_at) / span) * (w - label - 4);
  let top = 0;
  const lanes = devices.map((device) => {
    // Each attempt in the first track free at its start.
    const ends: number[] = [];
    const bars = t.attempts
      .filter((a) => a.runner_name === device)
      .map((a) => {
        const stop = a.ended_at ?? now;
        let k = ends.findIndex((e) => e <= a.started_at);
        if (k < 0) k = ends.push(stop) - 1;
        else ends[k] = stop;
        const x1 = x(a.started_at);
        const took = a.ended_at === null ? "running" : `${a.ended_at - a.started_at} ms`;
        return svg(
          "rect",
          {
            class: `attempt ${a.outcome}`,
            x: x1,
            y: 4 + k * track,
            width: Math.max(1.5, x(stop) - x1),
            height: track - 3,
            rx: 2,
            "data-task": a.task,
            "data-outcome": a.outcome,
          },
          svg("title", {}, `${a.task} #${a.attempt} ${a.outcome} (${took})`),
        );
      });
    const height = Math.max(22, ends.length * track + 8);
    const lane = svg(
      "g",
      { class: "lane", "data-device": device, transform: `translate(0,${top})` },
      svg("text", { x: 4, y: 15, class: "device" }, device.length > 22 ? `${device.slice(0, 21)}…` : device),
      svg("line", { x1: label, x2: w, y1: height - 1, y2: height - 1, class: "rule" }),
      bars,
    );
    top += height;
    return lane;
  });
  const axis = svg(
    "g",
    { class: "axis", transform: `translate(0,${top})` },
    svg("text", { x: label, y: 14 }, "0s"),
    svg("text", { x: w - 4, y: 14, "text-anchor": "end" }, formatDuration(span)),
  );
  return el(
    "div",
    { class: "timeline-box" },
    svg(
      "svg",
      {
        class: "timeline",
        viewBox: `0 0 ${w} ${top + 18}`,
        role: "img",
        "aria-label": `attempts on ${devices.length} device(s) over ${formatDuration(span)}`,
      },
      lanes,
      axis,
    ),
    legend(new Set(t.attempts.map((a) => a.outcome))),
    t.cut ? el("p", { class: "hint" }, `The latest ${t.attempts.length} attempts; the run has more.`) : null,
  );
}

/** What the colours of the timeline mean, for the outcomes it shows. */
function legend(shown: Set<string>): HTMLElement {
  const outcomes = ["succeeded", "failed", "lost", "returned", "cancelled", "cached", "running"].filter((o) =>
    shown.has(o),
  );
  return el(
    "p",
    { class: "legend" },
    outcomes.flatMap((o) => [
      svg(
        "svg",
        { class: "swatch", viewBox: "0 0 12 12", width: 12, height: 12, "aria-hidden": "true" },
        svg("rect", { class: `attempt ${o}`, width: 12, height: 12, rx: 2 }),
      ),
      ` ${o} `,
    ]),
  );
}
