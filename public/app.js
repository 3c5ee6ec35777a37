// The status page: recent runs; one run as a live graph (over GET /api/dags/:id/watch) with its
// throughput, controls, outputs and tasks; the connected runners with their CPU and memory load
// over the last ten minutes (the pool keeps their device reports). Plain modules, no build step,
// nothing from a CDN. Asks for the API token once and keeps it in localStorage.
const app = document.getElementById("app");
const tokenKey = "distro.token";
const token = () => localStorage.getItem(tokenKey) ?? "";

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const badge = (state) => `<span class="state ${esc(state)}">${esc(state)}</span>`;
const time = (ms) => (ms ? new Date(ms).toLocaleTimeString() : "");
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const DONE = ["succeeded", "failed", "skipped", "cancelled"];
const finished = (counts) => DONE.reduce((n, s) => n + (counts[s] ?? 0), 0);

/** A table's header row, one `<th>` per column name. */
const headerRow = (columns) => `<tr>${columns.map((c) => `<th>${c}</th>`).join("")}</tr>`;
/** A table row: `attrs` on the `<tr>` (its data-* name), one `<td>` per cell (HTML). */
const tableRow = (attrs, cells) => `<tr ${attrs}>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;

function duration(ms) {
  const s = Math.round(ms / 1000);
  return s < 60
    ? `${s}s`
    : s < 3600
      ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
      : `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  for (; n >= 1024 && i < units.length - 1; i++) n /= 1024;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

class Unauthorized extends Error {}

async function request(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { Authorization: `Bearer ${token()}`, ...init.headers } });
  if (res.status === 401) throw new Unauthorized("the token was not accepted");
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error ?? `HTTP ${res.status}`);
  return res;
}
const api = async (path, init) => (await request(path, init)).json();

const LOGIN_HINT = "The coordinator's API_TOKEN (dev-api-token with npm start). It stays in this browser.";

function askToken(message = "") {
  stop();
  app.innerHTML = `<form id="login" class="login">
    <label>API token <input id="token" type="password" autocomplete="current-password" required></label>
    <button>Open</button>
    <p class="hint">${esc(message) || LOGIN_HINT}</p></form>`;
  document.getElementById("login").onsubmit = (e) => {
    e.preventDefault();
    localStorage.setItem(tokenKey, document.getElementById("token").value);
    route();
  };
}

/** What the current view runs in the background (timers, the watch socket); stopped on leaving it. */
let stops = [];
function stop() {
  for (const s of stops.splice(0)) s();
}
function every(ms, fn) {
  let alive = true;
  let timer;
  const tick = async () => {
    let wait = ms;
    try {
      await fn();
      const box = document.getElementById("error");
      if (box) box.textContent = "";
    } catch (e) {
      fail(e);
      if (e instanceof Unauthorized) return;
      wait = Math.max(ms, 5000); // keep trying: the coordinator may be restarting
    }
    if (alive) timer = setTimeout(tick, wait);
  };
  stops.push(() => {
    alive = false;
    clearTimeout(timer);
  });
  return tick();
}
function fail(e) {
  if (e instanceof Unauthorized) return askToken(e.message);
  const box = document.getElementById("error");
  if (box) box.textContent = `Error: ${e.message}`;
  else app.innerHTML = `<p class="error">Error: ${esc(e.message)}</p>`;
}

/** A bar of done/total, drawn in SVG (the page's policy allows no inline style). */
function progress(done, total) {
  const pct = total ? Math.round((done / total) * 100) : 100;
  return `<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true">
    <rect class="track" width="100" height="8" rx="3"/><rect class="fill" width="${pct}" height="8" rx="3"/>
    </svg> ${done}/${total}`;
}

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

function runsView() {
  return listView(
    "Runs",
    "/api/dags",
    "runs",
    "No runs yet. Submit one: <code>distro submit dags/hello_fanout.yaml --wait</code>",
    (runs) => `<table class="runs">${headerRow(RUN_COLUMNS)}${runs.map(runRow).join("")}</table>`,
  );
}

// One run ------------------------------------------------------------------------------------

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

function graph(nodes) {
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
  const boxes = nodes.map((n) => {
    const { x, y } = pos.get(n.id);
    const total = n.instances ?? 1;
    const done = n.counts.succeeded ?? 0;
    const state = nodeState(n.counts, total);
    const label = n.instances === null ? state : `${done}/${total} · ${state}`;
    return `<g class="node ${state}" data-node="${esc(n.id)}" data-state="${state}" transform="translate(${x},${y})">
      <rect width="${W}" height="${H}" rx="8"/><text x="10" y="22" class="name">${esc(n.id)}</text>
      <text x="10" y="40" class="sub">${esc(label)}</text>
      <rect class="track" x="10" y="48" width="${W - 20}" height="5" rx="2"/>
      <rect class="fill" x="10" y="48" width="${((W - 20) * done) / total}" height="5" rx="2"/></g>`;
  });
  return `<svg class="graph" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img"
    aria-label="the DAG">${edges.join("")}${boxes.join("")}</svg>`;
}

/** Tasks finished per second over the run, as a line. */
function throughputChart(points) {
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

// Outputs come from devices nobody vouches for. Only the raster types the coordinator serves as
// images become object URLs, with the type set here; everything else (JSON, text, SVG, HTML,
// binary) is shown as escaped text at most and offered as a download of opaque bytes.
const RASTER = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const PREVIEW_CHARS = 4000;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** An object URL for `bytes` as `type`, revoked when the view is left. */
function objectUrl(bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  stops.push(() => URL.revokeObjectURL(url));
  return url;
}

/** An output as shown: `shown` (an image or a preview), captioned with what it is and a link. */
const figure = (shown, about, link) => `<figure>${shown}<figcaption>${about} · ${link}</figcaption></figure>`;
/** At most PREVIEW_CHARS of `text`, with an ellipsis when cut. */
const clip = (text) => (text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text);

async function showOutput(box, run, task) {
  const res = await request(`/api/dags/${run}/tasks/${encodeURIComponent(task)}/output`);
  const served = (res.headers.get("Content-Type") ?? "").split(";")[0].trim();
  const data = new Uint8Array(await res.arrayBuffer());
  const raster = RASTER.find((type) => type === served);
  const about = `${esc(task)} (${esc(served || "unknown type")}, ${bytes(data.length)})`;
  if (raster) {
    const url = objectUrl(data, raster);
    const img = `<img src="${url}" alt="output of ${esc(task)}" data-output="${esc(task)}">`;
    const open = `<a href="${url}" target="_blank" rel="noopener" data-open="${esc(task)}">open in a new tab</a>`;
    box.innerHTML = figure(img, about, open);
    return;
  }
  let text = null;
  try {
    text = utf8.decode(data);
  } catch {
    // not text: offered as a download only
  }
  const preview =
    text === null
      ? `<p class="hint" data-output="${esc(task)}">binary, not shown</p>`
      : `<pre data-output="${esc(task)}">${esc(clip(text))}</pre>`;
  const name = `${task.replace(/[^A-Za-z0-9_.-]/g, "_")}${served === "application/json" ? ".json" : ".bin"}`;
  const url = objectUrl(data, "application/octet-stream");
  const download = `<a href="${url}" download="${esc(name)}" data-download="${esc(task)}">download</a>`;
  box.innerHTML = figure(preview, about, download);
}

const TASK_COLUMNS = ["task", "state", "runner", "took", "attempts"];

/** One attempt of a task: outcome, runner, start, time taken, failure, note and the tail of stderr. */
function attemptItem(a) {
  const took = a.ended_at ? ` (${a.ended_at - a.started_at} ms)` : "";
  const error = a.error ? ` — ${esc(a.failure_kind)}: ${esc(a.error)}` : "";
  const note = a.note ? ` <em>${esc(a.note)}</em>` : "";
  const stderr = a.stderr ? `<pre>${esc(a.stderr.slice(-2000))}</pre>` : "";
  const start = `#${a.attempt} ${badge(a.outcome)} ${esc(a.runner_name)} ${time(a.started_at)}`;
  return `<li>${start}${took}${error}${note}${stderr}</li>`;
}

/** A task's attempts, folded, with a button to show its output once it succeeded. */
function attemptsCell(t) {
  const out = t.output_bytes !== null ? ` · ${bytes(t.output_bytes)} out` : "";
  const show =
    t.state === "succeeded"
      ? `<button class="link" data-show="${esc(t.id)}">show output</button><div class="out"></div>`
      : "";
  return `<details><summary>${t.attempts.length} attempt(s)${out}</summary>
    <ul>${t.attempts.map(attemptItem).join("")}</ul>${show}</details>`;
}

function taskRow(t) {
  const ms = t.ended_at && t.started_at ? `${t.ended_at - t.started_at} ms` : "";
  const waiting = t.waiting ? ` <small>${esc(t.waiting)}</small>` : "";
  return tableRow(`data-task="${esc(t.id)}"`, [
    esc(t.id),
    `${badge(t.state)}${waiting}`,
    esc(t.attempts.at(-1)?.runner_name),
    ms,
    attemptsCell(t),
  ]);
}

/** A control button for `action`, greyed out unless `enabled`. */
const control = (action, label, enabled, cls = "") =>
  `<button data-action="${action}"${cls ? ` class="${cls}"` : ""} ${enabled ? "" : "disabled"}>${label}</button>`;

async function runView(id) {
  app.innerHTML = `<p><a href="#/">← runs</a></p><div id="head"></div><p id="error" class="error"></p>
    <section><h3>Graph</h3><div id="graph" class="scroll"></div></section>
    <section id="outputs-box" hidden><h3>Outputs</h3><div id="outputs" class="outputs"></div></section>
    <section><h3>Throughput</h3><div id="throughput"></div></section>
    <section><h3>Tasks</h3><div id="tasks" class="scroll">Loading…</div></section>`;
  const state = { run: null, nodes: [], points: [], outputsShown: false };

  const draw = () => {
    const { run } = state;
    if (!run || !document.getElementById("head")) return;
    const counts = Object.entries(run.counts)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${badge(s)} ${n}`)
      .join(" ");
    const live = !FINAL.has(run.status);
    const bar = progress(run.counts.succeeded ?? 0, run.tasks_total);
    const took = duration((run.finished_at ?? Date.now()) - run.created_at);
    document.getElementById("head").innerHTML = `<h2>${esc(run.name)} ${badge(run.status)}</h2>
      <p>${bar} succeeded · ${took} · <code>${esc(run.id.slice(0, 16))}</code></p>
      <p class="counts">${counts}</p>
      <p class="controls">${control("pause", "Pause", run.status === "running" || run.status === "queued")}
      ${control("resume", "Resume", run.status === "paused")}
      ${control("cancel", "Cancel", live, "danger")}</p>`;
    document.getElementById("graph").innerHTML = graph(state.nodes);
    document.getElementById("throughput").innerHTML = throughputChart(state.points);
  };

  const showOutputs = async () => {
    if (state.outputsShown || state.run?.status !== "succeeded") return;
    state.outputsShown = true;
    const used = new Set(state.nodes.flatMap((n) => n.deps));
    const sinks = state.nodes.filter((n) => !used.has(n.id)).slice(0, 4);
    const box = document.getElementById("outputs");
    if (!box) return;
    document.getElementById("outputs-box").hidden = false;
    box.innerHTML = sinks.map((n) => `<div data-sink="${esc(n.id)}"></div>`).join("");
    for (const n of sinks)
      await showOutput(
        box.querySelector(`[data-sink="${CSS.escape(n.id)}"]`),
        id,
        n.instances === null ? n.id : `${n.id}[0]`,
      );
  };

  const loadTasks = async () => {
    const view = await api(`/api/dags/${id}?limit=200`);
    const box = document.getElementById("tasks");
    if (!box) return;
    const open = new Set([...box.querySelectorAll("details[open]")].map((d) => d.closest("tr").dataset.task));
    const more = view.tasks_total > view.tasks.length;
    box.innerHTML = `<table>${headerRow(TASK_COLUMNS)}${view.tasks.map(taskRow).join("")}</table>
      ${more ? `<p class="hint">First ${view.tasks.length} of ${view.tasks_total} tasks.</p>` : ""}`;
    for (const row of box.querySelectorAll("tr[data-task]"))
      if (open.has(row.dataset.task)) row.querySelector("details").open = true;
    if (state.points.length === 0) {
      // Opened after the fact: rebuild throughput from the tasks' end times.
      const ends = view.tasks
        .filter((t) => t.ended_at && DONE.includes(t.state))
        .map((t) => t.ended_at)
        .sort((a, b) => a - b);
      state.points = [{ t: view.created_at, done: 0 }, ...ends.map((t, i) => ({ t, done: i + 1 }))];
    }
    draw();
  };

  app.onclick = async (e) => {
    const action = e.target.closest("button[data-action]")?.dataset.action;
    const show = e.target.closest("button[data-show]");
    try {
      if (action) {
        if (action === "cancel" && !confirm("Cancel this run? Running attempts are stopped.")) return;
        await api(`/api/dags/${id}/${action}`, { method: "POST" });
        state.run = { ...state.run, ...(await api(`/api/dags/${id}?summary`)) };
        draw();
      }
      if (show) await showOutput(show.nextElementSibling, id, show.dataset.show);
    } catch (err) {
      fail(err);
    }
  };

  // Live: a snapshot, then updates until the run ends; the tasks table follows every 2 s.
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(
    `${scheme}://${location.host}/api/dags/${id}/watch?token=${encodeURIComponent(token())}`,
  );
  stops.push(() => socket.close());
  let dirty = true;
  socket.onmessage = (e) => {
    const m = JSON.parse(e.data);
    state.run = m.run;
    if (m.type === "snapshot") state.nodes = m.nodes;
    else for (const n of m.nodes) Object.assign(state.nodes.find((x) => x.id === n.id) ?? {}, { counts: n.counts });
    if (!FINAL.has(m.run.status) || state.points.length > 0)
      state.points.push({ t: m.run.updated_at, done: finished(m.run.counts) });
    dirty = true;
    draw();
    if (FINAL.has(m.run.status)) void loadTasks().then(showOutputs).catch(fail);
  };
  socket.onerror = () => fail(new Error("the live connection failed; showing what was last loaded"));
  await every(2000, async () => {
    if (!dirty) return;
    dirty = !FINAL.has(state.run?.status);
    await loadTasks();
  });
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

function runnersView() {
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

// Routing ------------------------------------------------------------------------------------

async function route() {
  stop();
  app.onclick = null;
  if (!token()) return askToken();
  const run = /^#\/runs\/([0-9a-f]{64})$/.exec(location.hash);
  for (const a of document.querySelectorAll("nav a"))
    a.classList.toggle(
      "active",
      a.getAttribute("href") === (location.hash.startsWith("#/runners") ? "#/runners" : "#/"),
    );
  try {
    if (run) await runView(run[1]);
    else if (location.hash === "#/runners") await runnersView();
    else await runsView();
  } catch (e) {
    fail(e);
  }
}

document.getElementById("logout").onclick = () => {
  localStorage.removeItem(tokenKey);
  askToken();
};
window.addEventListener("hashchange", route);
route();
