/**
 * The runners (#/runners, GET /api/runners every 2 s): the connected runner processes with
 * sparklines of their CPU and memory load over the last ten minutes (the pool keeps their device
 * reports), every enrolled device (its state, cooled down or not, and its trust), and for an
 * admin the "Add a device" panel (add-device.ts).
 */
import type { DeviceView, RunnerListing, RunnerView } from "../../core/api.js";
import { formatDuration, formatSize } from "../../core/units.js";
import { cooledDown, dateTime } from "../format.js";
import { api, app, el, every, may, progress, svg, table, visible } from "../lib.js";
import { addDevicePanel } from "./add-device.js";

/** A line of `values` (0–100) over time, labelled. */
function sparkline(values: number[], label: string): (Node | string)[] {
  const w = 120;
  const h = 28;
  if (values.length < 2) return [el("span", { class: "hint" }, label)];
  const xy = values
    .map((v, i) => `${((i / (values.length - 1)) * w).toFixed(1)},${(h - (v / 100) * (h - 2) - 1).toFixed(1)}`)
    .join(" ");
  const line = svg(
    "svg",
    { class: "spark", viewBox: `0 0 ${w} ${h}`, width: w, height: h, role: "img", "aria-label": label },
    svg("polyline", { points: xy }),
  );
  return [line, ` ${label}`];
}

const RUNNER_COLUMNS = ["runner", "platform", "busy slots", "CPU", "memory"];

function runnerRow(r: RunnerView, now: number): HTMLTableRowElement {
  const cooled = cooledDown(r.cooled_until, now);
  const cpu = r.history.map((s) => s.load);
  const mem = r.history.map((s) => (r.memory ? (1 - s.freeMemory / r.memory) * 100 : 0));
  const labels = r.labels.length ? ` · ${r.labels.map(visible).join(", ")}` : "";
  const load = r.load === null ? "–" : `${Math.round(r.load)}%`;
  return el(
    "tr",
    { "data-runner": r.name },
    el(
      "td",
      {},
      el("strong", {}, el("bdi", {}, visible(r.name))),
      el("br"),
      el("small", {}, visible(r.id)),
      cooled && [el("br"), el("span", { class: "state cooled" }, cooled)],
    ),
    el("td", {}, `${visible(r.platform)}/${visible(r.arch)}`, el("br"), el("small", {}, `${r.cores} cores${labels}`)),
    el("td", {}, progress(r.busy, r.slots)),
    el("td", {}, sparkline(cpu, load)),
    el("td", {}, sparkline(mem, `${formatSize(r.freeMemory)} free of ${formatSize(r.memory)}`)),
  );
}

const DEVICE_COLUMNS = ["device", "status", "labels", "trusted", "enrolled"];
const stateBadge = (state: string) => el("span", { class: `state ${state}` }, state);

/** A device's state: revoked, else connected or when it was last seen, and whether it is cooled down. */
function deviceState(d: DeviceView, now: number): (Node | string)[] {
  if (d.revoked_at) return [stateBadge("revoked"), " ", el("small", {}, dateTime(d.revoked_at))];
  const cooled = cooledDown(d.cooled_until, now);
  const cooling = cooled ? [" ", el("span", { class: "state cooled" }, cooled)] : [];
  if (d.connected) return [stateBadge("connected"), ...cooling];
  const seen = d.last_seen
    ? `last seen ${formatDuration(Math.max(0, now - d.last_seen))} ago`
    : "not seen since it joined";
  return [stateBadge("offline"), " ", el("small", {}, seen), ...cooling];
}

function deviceRow(d: DeviceView, now: number): HTMLTableRowElement {
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

export async function runnersView(): Promise<void> {
  document.title = "Distro: runners";
  // Enrolling devices is an admin's: other tokens see the pool without the panel.
  const panel = may("admin") ? addDevicePanel() : null;
  const runners = el("div", { id: "runners", class: "scroll" }, "Loading…");
  const devices = el("div", { id: "devices", class: "scroll" });
  const devicesBox = el("section", { id: "devices-box", hidden: true }, el("h3", {}, "Devices"), devices);
  app.replaceChildren(
    el("h2", {}, "Runners"),
    el("p", { id: "error", class: "error", role: "alert" }),
    panel?.node ?? "",
    el("section", {}, el("h3", {}, "Connected"), runners),
    devicesBox,
  );
  await every(2000, async () => {
    const listing = await api<RunnerListing>("/api/runners");
    if (!runners.isConnected) return; // the view was left while the list loaded
    const now = Date.now();
    runners.replaceChildren(
      listing.runners.length === 0
        ? el(
            "p",
            {},
            panel
              ? ["No runner connected. ", el("strong", {}, "Add a device"), " to get the command that joins one."]
              : "No runner connected. An admin token adds devices here.",
          )
        : table(
            "runners",
            RUNNER_COLUMNS,
            listing.runners.map((r) => runnerRow(r, now)),
          ),
    );
    const list = Array.isArray(listing.devices) ? listing.devices : null;
    devicesBox.hidden = list === null;
    devices.replaceChildren(
      !list || list.length === 0
        ? el("p", {}, "No device has joined yet.")
        : table(
            "devices",
            DEVICE_COLUMNS,
            list.map((d) => deviceRow(d, now)),
          ),
    );
    panel?.update(listing);
  });
}
