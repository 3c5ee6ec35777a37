// The two lists, refreshed every 2 s: recent runs (#/, GET /api/dags) and the connected runners
// (#/runners, GET /api/runners) with sparklines of their CPU and memory load over the last ten
// minutes (the pool keeps their device reports). Used by app.js's router.
import { api, app, badge, bytes, duration, esc, every, headerRow, progress, tableRow, time } from "./lib.js";

// Runs ---------------------------------------------------------------------------------------

/** A list refreshed every 2 s from `path`'s `key` array: drawn by `draw`, or `empty` when there is nothing. */
async function listView(title, path, key, empty, draw) {
  app.innerHTML = `<h2>${title}</h2><p id="error" class="error"></p><div id="${key}">Loading…</div>`;
  await every(2000, async () => {
    const items = (await api(path))[key];
    const box = document.getElementById(key);
    if (box) box.innerHTML = items.length === 0 ? `<p>${empty}</p>` : draw(items);
  });
}

const RUN_COLUMNS = ["run", "status", "progress", "duration", "submitted"];

function runRow(r) {
  return tableRow(`data-run="${esc(r.id)}"`, [
    `<a href="#/runs/${esc(r.id)}">${esc(r.name)}</a>`,
    badge(r.status),
    progress(r.counts.succeeded ?? 0, r.tasks),
    duration((r.finished_at ?? Date.now()) - r.created_at),
    time(r.created_at),
  ]);
}

export function runsView() {
  return listView(
    "Runs",
    "/api/dags",
    "runs",
    "No runs yet. Submit one: <code>distro submit dags/hello_fanout.yaml --wait</code>",
    (runs) => `<table class="runs">${headerRow(RUN_COLUMNS)}${runs.map(runRow).join("")}</table>`,
  );
}

// Runners ------------------------------------------------------------------------------------

function sparkline(values, label) {
  const w = 120,
    h = 28;
  if (values.length < 2) return `<span class="hint">${label}</span>`;
  const xy = values
    .map((v, i) => `${((i / (values.length - 1)) * w).toFixed(1)},${(h - (v / 100) * (h - 2) - 1).toFixed(1)}`)
    .join(" ");
  return `<svg class="spark" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img"
    aria-label="${esc(label)}"><polyline points="${xy}"/></svg> ${label}`;
}

const RUNNER_COLUMNS = ["runner", "platform", "busy slots", "CPU", "memory"];

function runnerRow(r) {
  const cpu = r.history.map((h) => h.load);
  const mem = r.history.map((h) => (r.memory ? (1 - h.freeMemory / r.memory) * 100 : 0));
  const labels = r.labels.length ? ` · ${esc(r.labels.join(", "))}` : "";
  const load = r.load === null ? "–" : `${Math.round(r.load)}%`;
  return tableRow(`data-runner="${esc(r.name)}"`, [
    `<strong>${esc(r.name)}</strong><br><small>${esc(r.id)}</small>`,
    `${esc(r.platform)}/${esc(r.arch)}<br><small>${r.cores} cores${labels}</small>`,
    progress(r.busy, r.slots),
    sparkline(cpu, load),
    sparkline(mem, `${bytes(r.freeMemory)} free of ${bytes(r.memory)}`),
  ]);
}

export function runnersView() {
  const command = `npx distro-runner --coordinator ${esc(location.origin)} --token RUNNER_TOKEN`;
  const empty = `No runner connected. Start one: <code>${command}</code>`;
  return listView(
    "Runners",
    "/api/runners",
    "runners",
    empty,
    (runners) => `<table class="runners">${headerRow(RUNNER_COLUMNS)}${runners.map(runnerRow).join("")}</table>`,
  );
}
