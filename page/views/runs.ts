/**
 * The runs list (#/), refreshed every 2 s from GET /api/dags: each run's name and id, status,
 * progress, start and length, with a search over names and ids, a status filter and "failed
 * first". The filters apply to the newest runs the coordinator lists (at most 200), in the page.
 */
import type { RunListing } from "../../core/api.js";
import { RUN_STATUSES } from "../../core/status.js";
import { dateTime, filterRuns, runDuration } from "../format.js";
import { api, app, badge, el, every, progress, table } from "../lib.js";

const COLUMNS = ["run", "status", "progress", "started", "took"];
const LISTED = 200;

function runRow(r: RunListing, now: number): HTMLTableRowElement {
  return el(
    "tr",
    { "data-run": r.id, "data-status": r.status },
    el(
      "td",
      {},
      el("a", { href: `#/runs/${r.id}` }, r.name),
      el("br"),
      el("code", { class: "id", title: r.id }, r.id.slice(0, 12)),
    ),
    el("td", {}, badge(r.status)),
    el("td", {}, progress(r.counts.succeeded ?? 0, r.tasks)),
    el("td", {}, el("time", { datetime: new Date(r.created_at).toISOString() }, dateTime(r.created_at))),
    el("td", {}, runDuration(r, now)),
  );
}

export async function runsView(): Promise<void> {
  document.title = "Distro: runs";
  const search = el("input", { id: "run-search", type: "search", placeholder: "name or id", autocomplete: "off" });
  const status = el(
    "select",
    { id: "run-status" },
    el("option", { value: "" }, "any status"),
    RUN_STATUSES.map((s) => el("option", { value: s }, s)),
  );
  const failedFirst = el("input", { id: "failed-first", type: "checkbox" });
  const box = el("div", { id: "runs", class: "scroll" }, "Loading…");
  app.replaceChildren(
    el("h2", {}, "Runs"),
    el(
      "form",
      { class: "filters", role: "search", "aria-label": "Filter runs" },
      el("label", {}, "Search ", search),
      el("label", {}, "Status ", status),
      el("label", { class: "check" }, failedFirst, " failed first"),
    ),
    el("p", { id: "error", class: "error", role: "alert" }),
    box,
  );
  let runs: RunListing[] | null = null;
  const draw = () => {
    if (!runs) return;
    if (runs.length === 0) {
      box.replaceChildren(
        el(
          "p",
          {},
          "No runs yet. ",
          el("a", { href: "#/new" }, "Start one"),
          " or submit one: ",
          el("code", {}, "distro submit dags/hello_fanout.yaml --wait"),
        ),
      );
      return;
    }
    const shown = filterRuns(runs, search.value, status.value, failedFirst.checked);
    const now = Date.now();
    box.replaceChildren(
      shown.length === 0
        ? el("p", { class: "hint" }, `None of the ${runs.length} newest runs matches.`)
        : table(
            "runs",
            COLUMNS,
            shown.map((r) => runRow(r, now)),
          ),
    );
  };
  for (const input of [search, status, failedFirst]) input.addEventListener("input", draw);
  let drawn = "";
  await every(2000, async () => {
    const answer = (await api<{ runs: RunListing[] }>(`/api/dags?limit=${LISTED}`)).runs;
    // Redrawn when a run changed, or while one runs (its length grows): not under the user's cursor.
    const key = JSON.stringify(answer);
    runs = answer;
    if (box.isConnected && (key !== drawn || answer.some((r) => r.finished_at === null))) draw();
    drawn = key;
  });
}
