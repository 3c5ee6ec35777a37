// The drawings of one run, as SVG markup from data (no DOM, no state): the DAG laid out in layers with
// each node's state and progress, and the throughput chart of tasks finished per second. Used by
// run-view.js.
import { esc } from "./lib.js";

/** The state a node is drawn in: the most telling of its instances' states. */
function nodeState(counts, total) {
  if (counts.failed) return "failed";
  if ((counts.succeeded ?? 0) === total) return "succeeded";
  for (const s of ["leased", "waiting", "ready", "backoff", "lookup", "cancelled", "skipped"]) if (counts[s]) return s;
  return "blocked";
}

/** Layers by longest path from the roots, so every edge points right. */
function layout(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const depth = new Map();
  const level = (n) => {
    if (!depth.has(n.id))
      depth.set(n.id, n.deps.length === 0 ? 0 : 1 + Math.max(...n.deps.map((d) => level(byId.get(d)))));
    return depth.get(n.id);
  };
  const layers = [];
  for (const n of nodes) (layers[level(n)] ??= []).push(n);
  const W = 170,
    H = 62,
    GX = 50,
    GY = 18;
  const pos = new Map();
  layers.forEach((layer, x) => layer.forEach((n, y) => pos.set(n.id, { x: 10 + x * (W + GX), y: 10 + y * (H + GY) })));
  const tall = Math.max(...layers.map((l) => l.length));
  return { pos, W, H, width: 20 + layers.length * (W + GX) - GX, height: 20 + tall * (H + GY) - GY };
}

export function graph(nodes) {
  const { pos, W, H, width, height } = layout(nodes);
  const edges = nodes.flatMap((n) =>
    n.deps.map((d) => {
      const a = pos.get(d),
        b = pos.get(n.id);
      const x1 = a.x + W,
        y1 = a.y + H / 2,
        x2 = b.x,
        y2 = b.y + H / 2;
      return `<path class="edge" d="M${x1},${y1} C${x1 + 25},${y1} ${x2 - 25},${y2} ${x2},${y2}"/>`;
    }),
  );
  // A map over data with no instances is done once its dependencies are, and never before
  // (nodes come in dependency order).
  const states = new Map();
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
    const { x, y } = pos.get(n.id);
    const total = n.instances ?? 1;
    const done = n.counts.succeeded ?? 0;
    const state = states.get(n.id);
    const label = n.instances === null ? state : `${done}/${total} · ${state}`;
    return `<g class="node ${state}" data-node="${esc(n.id)}" data-state="${state}" transform="translate(${x},${y})">
      <rect width="${W}" height="${H}" rx="8"/><text x="10" y="22" class="name">${esc(n.id)}</text>
      <text x="10" y="40" class="sub">${esc(label)}</text>
      <rect class="track" x="10" y="48" width="${W - 20}" height="5" rx="2"/>
      <rect class="fill" x="10" y="48" width="${total === 0 ? 0 : ((W - 20) * done) / total}" height="5" rx="2"/></g>`;
  });
  return `<svg class="graph" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img"
    aria-label="the DAG">${edges.join("")}${boxes.join("")}</svg>`;
}

/** Tasks finished per second over the run, as a line. */
export function throughputChart(points) {
  if (points.length < 2) return `<p class="hint">Throughput appears as tasks finish.</p>`;
  const t0 = points[0].t;
  const span = Math.max(1, Math.ceil((points.at(-1).t - t0) / 1000));
  const perSecond = new Array(span + 1).fill(0);
  for (let i = 1; i < points.length; i++)
    perSecond[Math.floor((points[i].t - t0) / 1000)] += points[i].done - points[i - 1].done;
  const max = Math.max(1, ...perSecond);
  const w = 600,
    h = 120;
  const xy = perSecond
    .map((v, i) => `${((i / Math.max(1, span)) * w).toFixed(1)},${(h - (v / max) * (h - 10)).toFixed(1)}`)
    .join(" ");
  return `<svg class="chart" viewBox="0 0 ${w} ${h + 16}" preserveAspectRatio="none" role="img"
    aria-label="tasks per second">
    <polyline points="${xy}"/><text x="4" y="12">${max} tasks/s</text><text x="4" y="${h + 14}">0s</text>
    <text x="${w - 4}" y="${h + 14}" text-anchor="end">${span}s</text></svg>`;
}
