// One run (#/runs/<id>): its head with counts and controls, the live graph and throughput over the
// watch socket (GET /api/dags/:id/watch), the outputs of its sink tasks under the hostile-output rules
// below, and the task table with each task's attempts. Used by app.js's router.
import {
  api,
  app,
  badge,
  bytes,
  duration,
  esc,
  every,
  fail,
  headerRow,
  mayControl,
  onLeave,
  progress,
  request,
  tableRow,
  time,
  token,
} from "./lib.js";
import { graph, throughputChart } from "./run-charts.js";

const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const DONE = ["succeeded", "failed", "skipped", "cancelled"];
const finished = (counts) => DONE.reduce((n, s) => n + (counts[s] ?? 0), 0);

// Outputs come from devices nobody vouches for. Only the raster types the coordinator serves as
// images become object URLs, with the type set here; everything else (JSON, text, SVG, HTML,
// binary) is shown as escaped text at most and offered as a download of opaque bytes.
const RASTER = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const PREVIEW_CHARS = 4000;
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** An object URL for `bytes` as `type`, revoked when the view is left. */
function objectUrl(bytes, type) {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  onLeave(() => URL.revokeObjectURL(url));
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

export async function runView(id) {
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
    const by = run.submitted_by ? ` · submitted by <span id="submitter">${esc(run.submitted_by.name)}</span>` : "";
    // Only the controls this token may use (lib.js mayControl); the coordinator checks them too.
    const controls = mayControl(run)
      ? `<p class="controls">${control("pause", "Pause", run.status === "running" || run.status === "queued")}
      ${control("resume", "Resume", run.status === "paused")}
      ${control("cancel", "Cancel", live, "danger")}</p>`
      : "";
    document.getElementById("head").innerHTML = `<h2>${esc(run.name)} ${badge(run.status)}</h2>
      <p>${bar} succeeded · ${took} · <code>${esc(run.id.slice(0, 16))}</code>${by}</p>
      <p class="counts">${counts}</p>${controls}`;
    document.getElementById("graph").innerHTML = graph(state.nodes);
    document.getElementById("throughput").innerHTML = throughputChart(state.points);
  };

  const showOutputs = async () => {
    if (state.outputsShown || state.run?.status !== "succeeded") return;
    state.outputsShown = true;
    try {
      await drawOutputs();
    } catch (e) {
      state.outputsShown = false; // the next refresh tries again
      throw e;
    }
  };

  const drawOutputs = async () => {
    const used = new Set(state.nodes.flatMap((n) => n.deps));
    const sinks = state.nodes.filter((n) => !used.has(n.id) && n.instances !== 0).slice(0, 4);
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
    // The watch socket normally brings the run's state; this view stands in when it could not.
    if (state.nodes.length === 0) state.nodes = view.nodes;
    if (!state.run || (FINAL.has(view.status) && !FINAL.has(state.run.status))) state.run = view;
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
  onLeave(() => socket.close());
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
    if (!dirty && (state.outputsShown || state.run?.status !== "succeeded")) return;
    dirty = !FINAL.has(state.run?.status);
    await loadTasks();
    await showOutputs();
  });
}
