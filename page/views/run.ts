/**
 * One run (#/runs/<id>): its head (name, status, the whole id with Copy, counts and the controls
 * its token may use: pause, resume, cancel, and retry once it failed or was cancelled, as
 * `distro retry` does), the live graph over the watch socket (GET /api/dags/:id/watch), the
 * outputs of its sink tasks under the hostile-output rules below, the timeline of attempts per
 * device and the throughput over the whole run (GET /api/dags/:id/timeline), and the task table:
 * each task's error in its row, its attempts, its log (logs.ts) and its output.
 */
import type {
  AttemptView,
  NodeView,
  RetryAnswer,
  RunSummary,
  RunView,
  TaskView,
  TimelineView,
} from "../../core/api.js";
import type { WatchMessage } from "../../core/protocol/watch.js";
import { isFinal } from "../../core/status.js";
import { formatSize } from "../../core/units.js";
import { runDuration, time } from "../format.js";
import {
  api,
  ApiError,
  app,
  badge,
  copy,
  el,
  every,
  fail,
  mayControl,
  objectUrl,
  onLeave,
  post,
  progress,
  request,
  stop,
  table,
  token,
  current,
  visible,
} from "../lib.js";
import { graph, throughputChart, timeline } from "./charts.js";
import { logPanel } from "./logs.js";

// Outputs come from devices nobody vouches for. Only the raster types the coordinator serves as
// images become object URLs, with the type set here; everything else (JSON, text, SVG, HTML,
// binary) is shown as escaped text at most and offered as a download of opaque bytes.
const RASTER = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const PREVIEW_CHARS = 4000;
const utf8 = new TextDecoder("utf-8", { fatal: true });
/** Tasks the table lists (the first of the run, failed ones first). */
const TASKS_SHOWN = 200;
/** How often a live run's timeline is asked for (a run of many attempts makes it a large answer). */
const TIMELINE_EVERY_MS = 10_000;

/** A task's output in `box`: an image or a preview, captioned with what it is, and a link to open or download it. */
async function showOutput(box: HTMLElement, run: string, task: string): Promise<void> {
  const res = await request(`/api/dags/${run}/tasks/${encodeURIComponent(task)}/output`);
  const served = (res.headers.get("Content-Type") ?? "").split(";")[0]!.trim();
  const data = new Uint8Array(await res.arrayBuffer());
  const raster = RASTER.find((type) => type === served);
  const about = `${task} (${served || "unknown type"}, ${formatSize(data.length)})`;
  const name = `${task.replace(/[^A-Za-z0-9_.-]/g, "_")}${raster ? `.${raster.slice(6)}` : served === "application/json" ? ".json" : ".bin"}`;
  let shown: HTMLElement;
  let link: HTMLElement;
  if (raster) {
    const url = objectUrl(data, raster);
    shown = el("img", { src: url, alt: `output of ${task}`, "data-output": task });
    link = el(
      "span",
      {},
      el("a", { href: url, target: "_blank", rel: "noopener", "data-open": task }, "open in a new tab"),
      " · ",
      el("a", { href: url, download: name, "data-download": task }, "download"),
    );
  } else {
    let text: string | null = null;
    try {
      text = utf8.decode(data);
    } catch {
      // not text: offered as a download only
    }
    shown =
      text === null
        ? el("p", { class: "hint", "data-output": task }, "binary, not shown")
        : el("pre", { "data-output": task }, text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS)}…` : text);
    const url = objectUrl(data, "application/octet-stream");
    link = el("a", { href: url, download: name, "data-download": task }, "download");
  }
  box.replaceChildren(el("figure", {}, shown, el("figcaption", {}, `${about} · `, link)));
}

/** One attempt: outcome, runner, start, time taken, failure, note, a Log button and the tail of stderr. */
function attemptItem(task: string, a: AttemptView): HTMLElement {
  const took = a.ended_at ? ` (${a.ended_at - a.started_at} ms)` : "";
  return el(
    "li",
    { "data-attempt": a.attempt },
    `#${a.attempt} `,
    badge(a.outcome),
    " ",
    el("bdi", {}, visible(a.runner_name)),
    ` ${time(a.started_at)}${took}`,
    a.error && el("span", { class: "error" }, ` — ${a.failure_kind}: ${a.error}`),
    a.note && [" ", el("em", {}, a.note)],
    a.runner.startsWith("run:") || a.outcome === "cached"
      ? null
      : [" ", el("button", { type: "button", class: "link", "data-log": task, "data-log-attempt": a.attempt }, "log")],
    a.stderr && el("pre", {}, a.stderr.slice(-2000)),
  );
}

/** The error of a task's last failed attempt, shown in its row (reachable on a phone without unfolding). */
function lastError(t: TaskView): HTMLElement | null {
  const failed = [...t.attempts].reverse().find((a) => a.error);
  if (!failed || (t.state !== "failed" && t.state !== "backoff")) return null;
  return el("div", { class: "task-error", "data-error": t.id }, `${failed.failure_kind}: ${failed.error}`);
}

function taskRow(t: TaskView): HTMLTableRowElement {
  const ms = t.ended_at && t.started_at ? `${t.ended_at - t.started_at} ms` : "";
  const out = t.output_bytes !== null ? ` · ${formatSize(t.output_bytes)} out` : "";
  return el(
    "tr",
    { "data-task": t.id },
    el("td", { "data-label": "task" }, t.id),
    el("td", { "data-label": "state" }, badge(t.state), t.waiting && [" ", el("small", {}, t.waiting)], lastError(t)),
    el("td", { "data-label": "runner" }, el("bdi", {}, visible(t.attempts.at(-1)?.runner_name))),
    el("td", { "data-label": "took" }, ms),
    el(
      "td",
      { "data-label": "attempts" },
      el(
        "details",
        {},
        el("summary", {}, `${t.attempts.length} attempt(s)${out}`),
        el(
          "ul",
          {},
          t.attempts.map((a) => attemptItem(t.id, a)),
        ),
      ),
      t.state === "succeeded" && [
        el("button", { type: "button", class: "link", "data-show": t.id }, "output"),
        el("div", { class: "out" }),
      ],
    ),
  );
}

/** A control button for `action`, greyed out unless `enabled`. */
const control = (action: string, label: string, enabled: boolean, cls = "") =>
  el("button", { type: "button", "data-action": action, class: cls || null, disabled: !enabled }, label);

/** The page of a run that does not exist (or an address that is not a run's). */
function noSuchRun(id: string): void {
  document.title = "Distro: no such run";
  app.replaceChildren(
    el("p", {}, el("a", { href: "#/" }, "← runs")),
    el("h2", {}, "No such run"),
    el(
      "p",
      { class: "error", role: "alert", id: "no-run" },
      `The coordinator has no run ${id}. It may have been deleted, or the address is cut short.`,
    ),
  );
}

/** The DAG's sinks (nodes nothing depends on), the first four: the outputs shown at the end. */
const sinks = (nodes: NodeView[]) => {
  const used = new Set(nodes.flatMap((n) => n.deps));
  return nodes.filter((n) => !used.has(n.id) && n.instances !== 0).slice(0, 4);
};

export async function runView(id: string, notice = ""): Promise<void> {
  // The view that asked is still the one shown once the answer is in (the address may have moved on).
  const shown = current();
  // A run id, or the start of one: anything else names no run, and is not asked about.
  if (!/^[0-9a-f]{1,64}$/.test(id)) return noSuchRun(id);
  let first: RunSummary;
  try {
    first = await api<RunSummary>(`/api/dags/${id}?summary`);
  } catch (e) {
    if (shown() && e instanceof ApiError && (e.status === 404 || e.status === 400)) return noSuchRun(id);
    throw e;
  }
  if (!shown()) return;
  id = first.id;
  const head = el("div", { id: "head" });
  const note = el("p", { id: "notice", class: "notice", "aria-live": "polite" }, notice);
  const graphBox = el("div", { id: "graph", class: "scroll" });
  const outputsBox = el("section", { id: "outputs-box", hidden: true }, el("h3", {}, "Outputs"));
  const outputs = el("div", { id: "outputs", class: "outputs" });
  outputsBox.append(outputs);
  const timelineBox = el("div", { id: "timeline", class: "scroll" }, "Loading…");
  const throughput = el("div", { id: "throughput" });
  const tasks = el("div", { id: "tasks", class: "scroll" }, "Loading…");
  const logBox = el("div", { id: "log-box" });
  app.replaceChildren(
    el("p", {}, el("a", { href: "#/" }, "← runs")),
    head,
    note,
    el("p", { id: "error", class: "error", role: "alert" }),
    el("section", {}, el("h3", {}, "Graph"), graphBox),
    outputsBox,
    el("section", {}, el("h3", {}, "Timeline"), timelineBox),
    el("section", {}, el("h3", {}, "Throughput"), throughput),
    el("section", {}, el("h3", {}, "Tasks"), tasks, logBox),
  );
  const state = { run: first, nodes: [] as NodeView[], outputsShown: false, dirty: true };
  /** What the task table and the timeline were last drawn from. */
  const drawn = { head: "", tasks: "", timeline: "" };
  /** Outputs opened in the task table, as shown: put back when the table is redrawn, not fetched again. */
  const opened = new Map<string, HTMLElement>();
  /** Stops the log panel shown, if any. */
  let closeLog = () => {};

  /** The run's length in the head, kept up to date in place. */
  const took = el("span", { id: "took" });
  const drawHead = () => {
    const { run } = state;
    took.textContent = runDuration(run, Date.now());
    // Redrawn only when what it shows changed: a redraw would take the focus off its buttons.
    const key = JSON.stringify([run.status, run.counts, run.tasks_total, run.name, run.submitted_by, run.retry_of]);
    if (key === drawn.head) return;
    drawn.head = key;
    document.title = `${run.name} · ${run.status} — Distro`;
    const live = !isFinal(run.status);
    const idCode = el("code", { id: "run-id" }, run.id);
    const copyId = el(
      "button",
      { type: "button", id: "copy-id", class: "link", "aria-label": "copy the run id" },
      "Copy",
    );
    copyId.onclick = () => void copy(run.id, idCode, copyId);
    const counts = Object.entries(run.counts)
      .filter(([, n]) => n > 0)
      .flatMap(([s, n]) => [badge(s), ` ${n} `]);
    // Only the controls this token may use (lib.ts mayControl); the coordinator checks them too.
    const controls = mayControl(run)
      ? el(
          "p",
          { class: "controls" },
          control("pause", "Pause", run.status === "running" || run.status === "queued"),
          control("resume", "Resume", run.status === "paused"),
          control("cancel", "Cancel", live, "danger"),
          control("retry", "Retry", run.status === "failed" || run.status === "cancelled"),
        )
      : null;
    head.replaceChildren(
      el("h2", {}, `${run.name} `, badge(run.status)),
      el("p", { class: "run-id" }, "run ", idCode, " ", copyId),
      el(
        "p",
        {},
        progress(run.counts.succeeded ?? 0, run.tasks_total),
        " succeeded · ",
        took,
        run.submitted_by && [" · submitted by ", el("span", { id: "submitter" }, run.submitted_by.name)],
        run.retry_of && [" · retries ", el("a", { href: `#/runs/${run.retry_of}` }, run.retry_of.slice(0, 12))],
      ),
      el("p", { class: "counts" }, counts),
      controls ?? "",
    );
  };
  const drawGraph = () => {
    if (state.nodes.length > 0) graphBox.replaceChildren(graph(state.nodes));
  };

  const showOutputs = async () => {
    if (state.outputsShown || state.run.status !== "succeeded" || state.nodes.length === 0) return;
    state.outputsShown = true;
    try {
      outputsBox.hidden = false;
      const boxes = sinks(state.nodes).map((n) => [n, el("div", { "data-sink": n.id })] as const);
      outputs.replaceChildren(...boxes.map(([, box]) => box));
      for (const [n, box] of boxes) await showOutput(box, id, n.instances === null ? n.id : `${n.id}[0]`);
    } catch (e) {
      state.outputsShown = false; // the next refresh tries again
      throw e;
    }
  };

  const loadTasks = async () => {
    // Failed tasks first, then the first of the run: what needs fixing is never past the page.
    const [failedOnes, view] = await Promise.all([
      api<RunView>(`/api/dags/${id}?state=failed&limit=${TASKS_SHOWN}`),
      api<RunView>(`/api/dags/${id}?limit=${TASKS_SHOWN}`),
    ]);
    if (!tasks.isConnected) return;
    const open = new Set([...tasks.querySelectorAll("details[open]")].map((d) => d.closest("tr")!.dataset.task));
    const seen = new Set(failedOnes.tasks.map((t) => t.id));
    const list = [...failedOnes.tasks, ...view.tasks.filter((t) => !seen.has(t.id))].slice(0, TASKS_SHOWN);
    // Redrawn only when something changed: a redraw would move what the user is reading or clicking.
    const key = JSON.stringify([list, view.tasks_total]);
    if (key !== drawn.tasks) {
      drawn.tasks = key;
      tasks.replaceChildren(
        table("tasks", ["task", "state", "runner", "took", "attempts"], list.map(taskRow)),
        view.tasks_total > list.length
          ? el("p", { class: "hint" }, `${list.length} of ${view.tasks_total} tasks: the failed ones, then the first.`)
          : "",
      );
      for (const row of tasks.querySelectorAll<HTMLTableRowElement>("tr[data-task]")) {
        if (open.has(row.dataset.task)) row.querySelector("details")!.open = true;
        const shownOutput = opened.get(row.dataset.task!);
        if (shownOutput) row.querySelector<HTMLElement>("div.out")?.replaceChildren(...shownOutput.childNodes);
      }
    }
    // The watch socket normally brings the nodes; this view stands in when it could not.
    if (state.nodes.length === 0) {
      state.nodes = view.nodes;
      drawGraph();
    }
    if (isFinal(view.status) && !isFinal(state.run.status)) state.run = view;
    drawHead();
  };

  const loadTimeline = async () => {
    const t = await api<TimelineView>(`/api/dags/${id}/timeline`);
    if (!timelineBox.isConnected) return;
    const key = JSON.stringify(t);
    if (key === drawn.timeline && t.finished_at !== null) return;
    drawn.timeline = key;
    timelineBox.replaceChildren(timeline(t, Date.now()));
    throughput.replaceChildren(throughputChart(t));
  };

  app.onclick = async (e) => {
    const target = e.target as HTMLElement;
    const action = target.closest<HTMLElement>("button[data-action]")?.dataset.action;
    const show = target.closest<HTMLElement>("button[data-show]");
    const log = target.closest<HTMLElement>("button[data-log]");
    try {
      if (action === "retry") {
        const answer = await post<RetryAnswer>(`/api/dags/${id}/retry`, {});
        if (!shown()) return;
        // The same words as `distro retry`; the view starts again to follow the run live.
        stop();
        await runView(id, `run ${answer.id} is ${answer.status}: ${answer.retried} task(s) run again`);
        return;
      }
      if (action) {
        if (action === "cancel" && !confirm("Cancel this run? Running attempts are stopped.")) return;
        await post(`/api/dags/${id}/${action}`, {});
        state.run = { ...state.run, ...(await api<RunSummary>(`/api/dags/${id}?summary`)) };
        drawHead();
      }
      if (show) {
        const box = show.nextElementSibling as HTMLElement;
        await showOutput(box, id, show.dataset.show!);
        opened.set(show.dataset.show!, box);
      }
      if (log) {
        closeLog();
        const panel = logPanel(id, log.dataset.log!, Number(log.dataset.logAttempt), () => logBox.replaceChildren());
        closeLog = panel.stop;
        logBox.replaceChildren(panel.node);
        panel.node.scrollIntoView({ block: "nearest" });
      }
    } catch (err) {
      fail(err);
    }
  };

  drawHead();
  // Live: a snapshot, then updates until the run ends; tasks and the timeline follow every 2 s.
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(
    `${scheme}://${location.host}/api/dags/${id}/watch?token=${encodeURIComponent(token())}`,
  );
  onLeave(() => socket.close());
  socket.onmessage = (e: MessageEvent<string>) => {
    const m = JSON.parse(e.data) as WatchMessage;
    state.run = m.run;
    if (m.type === "snapshot") state.nodes = m.nodes;
    else for (const n of m.nodes) Object.assign(state.nodes.find((x) => x.id === n.id) ?? {}, { counts: n.counts });
    state.dirty = true;
    drawHead();
    drawGraph();
    if (isFinal(m.run.status)) void refresh().catch(fail);
  };
  socket.onerror = () => fail(new Error("the live connection failed; showing what was last loaded"));
  /** When the timeline was last asked for: at most every TIMELINE_EVERY_MS while the run goes on. */
  let timelineAt = 0;
  const refresh = async () => {
    const final = isFinal(state.run.status);
    const timelineDue = final || Date.now() - timelineAt >= TIMELINE_EVERY_MS;
    if (timelineDue) timelineAt = Date.now();
    await Promise.all([loadTasks(), timelineDue ? loadTimeline() : undefined]);
    await showOutputs();
  };
  await every(2000, async () => {
    if (!state.dirty && (state.outputsShown || state.run.status !== "succeeded")) return;
    // A paused run changes only when someone acts on it (the watch socket says so).
    if (state.run.status === "paused" && !state.dirty) return;
    state.dirty = !isFinal(state.run.status) && state.run.status !== "paused";
    await refresh();
  });
}
