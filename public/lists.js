// The two lists, refreshed every 2 s: recent runs (#/, GET /api/dags) and the runners (#/runners,
// GET /api/runners): the connected runner processes with sparklines of their CPU and memory load
// over the last ten minutes (the pool keeps their device reports), every enrolled device (its
// state, cooled down or not, and its trust), and the "Add a device" panel (add-device.js). Used by
// app.js's router.
import { addDevicePanel } from "./add-device.js";
import {
  api,
  app,
  badge,
  bytes,
  cooledDown,
  dateTime,
  duration,
  el,
  esc,
  every,
  headerRow,
  may,
  progress,
  tableRow,
  time,
  visible,
} from "./lib.js";

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

function runnerRow(r, now) {
  const cooled = cooledDown(r.cooled_until, now);
  const cpu = r.history.map((h) => h.load);
  const mem = r.history.map((h) => (r.memory ? (1 - h.freeMemory / r.memory) * 100 : 0));
  const labels = r.labels.length ? ` · ${esc(r.labels.map(visible).join(", "))}` : "";
  const load = r.load === null ? "–" : `${Math.round(r.load)}%`;
  return tableRow(`data-runner="${esc(r.name)}"`, [
    `<strong><bdi>${esc(visible(r.name))}</bdi></strong><br><small>${esc(visible(r.id))}</small>` +
      (cooled ? `<br><span class="state cooled">${esc(cooled)}</span>` : ""),
    `${esc(visible(r.platform))}/${esc(visible(r.arch))}<br><small>${r.cores} cores${labels}</small>`,
    progress(r.busy, r.slots),
    sparkline(cpu, load),
    sparkline(mem, `${bytes(r.freeMemory)} free of ${bytes(r.memory)}`),
  ]);
}

const DEVICE_COLUMNS = ["device", "status", "labels", "trusted", "enrolled"];
const stateBadge = (state) => el("span", { class: `state ${state}` }, state);

/** A device's state: revoked, else connected or when it was last seen, and whether it is cooled down. */
function deviceState(d, now) {
  if (d.revoked_at) return [stateBadge("revoked"), " ", el("small", {}, dateTime(d.revoked_at))];
  const cooled = cooledDown(d.cooled_until, now);
  const cooling = cooled ? [" ", el("span", { class: "state cooled" }, cooled)] : [];
  if (d.connected) return [stateBadge("connected"), ...cooling];
  const seen = d.last_seen ? `last seen ${duration(Math.max(0, now - d.last_seen))} ago` : "not seen since it joined";
  return [stateBadge("offline"), " ", el("small", {}, seen), ...cooling];
}

/** One enrolled device, built as elements: its name, id and labels are whatever the device and the coordinator said. */
function deviceRow(d, now) {
  const labels = Array.isArray(d.labels) ? d.labels.map(visible) : [];
  const how = d.enrollment === null ? " · with the development secret" : "";
  return el(
    "tr",
    { "data-device": String(d.id) },
    el(
      "td",
      {},
      el("strong", {}, el("bdi", {}, visible(d.name))),
      el("br"),
      el("small", {}, el("bdi", {}, visible(d.id))),
    ),
    el("td", {}, deviceState(d, now)),
    el("td", {}, labels.join(", ") || "–"),
    el("td", {}, d.trusted ? el("span", { class: "trusted" }, "trusted") : "–"),
    el("td", {}, el("small", {}, dateTime(d.enrolled_at), how)),
  );
}

function devicesTable(devices) {
  if (devices.length === 0) return el("p", {}, "No device has joined yet.");
  const now = Date.now();
  return el(
    "table",
    { class: "devices" },
    el(
      "tr",
      {},
      DEVICE_COLUMNS.map((c) => el("th", {}, c)),
    ),
    devices.map((d) => deviceRow(d, now)),
  );
}

const NO_RUNNER = "No runner connected. <strong>Add a device</strong> to get the command that joins one.";
const NO_RUNNER_READ = "No runner connected. An admin token adds devices here.";

/** The connected runner processes, the enrolled devices and the "Add a device" panel, refreshed every 2 s. */
export function runnersView() {
  // Enrolling devices is an admin's: other tokens see the pool without the panel.
  const panel = may("admin") ? addDevicePanel() : null;
  app.replaceChildren(
    el("h2", {}, "Runners"),
    el("p", { id: "error", class: "error" }),
    panel?.node ?? "",
    el("section", {}, el("h3", {}, "Connected"), el("div", { id: "runners" }, "Loading…")),
    el("section", { id: "devices-box", hidden: true }, el("h3", {}, "Devices"), el("div", { id: "devices" })),
  );
  return every(2000, async () => {
    const listing = await api("/api/runners");
    const runners = document.getElementById("runners");
    if (!runners) return; // the view was left while the list loaded
    const now = Date.now();
    const rows = listing.runners.map((r) => runnerRow(r, now)).join("");
    runners.innerHTML =
      listing.runners.length === 0
        ? `<p>${panel ? NO_RUNNER : NO_RUNNER_READ}</p>`
        : `<table class="runners">${headerRow(RUNNER_COLUMNS)}${rows}</table>`;
    const devices = Array.isArray(listing.devices) ? listing.devices : null;
    document.getElementById("devices-box").hidden = devices === null;
    document.getElementById("devices").replaceChildren(devicesTable(devices ?? []));
    panel?.update(listing);
  });
}
