/**
 * "Add a device" on the runners page, as GitHub's "New self-hosted runner" does it: a form
 * (labels, uses, expiry) asks the coordinator for an enrollment (POST /api/enrollments), then the
 * one-line command that installs the runner and joins with it is shown per platform, each with a
 * Copy button, beside the token's expiry and the warning that it is shown once; then, fed each
 * GET /api/runners listing the runners view loads, the panel says who joined with it and whether
 * it is connected.
 */
import type { DeviceView, EnrollmentCreated, EnrollmentRequest, JoinCommands, RunnerListing } from "../../core/api.js";
import { formatDuration } from "../../core/units.js";
import { dateTime } from "../format.js";
import { copy, el, fail, post, visible } from "../lib.js";

/** The platforms of `JoinCommands`, in the order their tabs are shown. */
const PLATFORMS: { key: keyof JoinCommands; label: string }[] = [
  { key: "unix", label: "Linux / macOS" },
  { key: "powershell", label: "Windows PowerShell" },
  { key: "termux", label: "Android (Termux)" },
];
const EXPIRIES = [
  ["10m", "10 minutes"],
  ["1h", "1 hour"],
  ["1d", "1 day"],
  ["7d", "7 days"],
  ["30d", "30 days"],
] as const;
const DEFAULT_EXPIRY = "1h";

/** The panel: a button, then the form, then the new enrollment's commands; `update` shows who joined with it. */
export function addDevicePanel(): { node: HTMLElement; update: (listing: Pick<RunnerListing, "devices">) => void } {
  const node = el("section", { id: "add-device", class: "add-device" });
  /** The enrollment shown and its status line, while its commands are on screen. */
  let shown: { enrollment: EnrollmentCreated; status: HTMLElement } | null = null;

  const collapse = () => {
    shown = null; // its token leaves the page with it
    const open = el("button", { id: "add-device-open", type: "button" }, "Add a device");
    open.onclick = () => {
      node.replaceChildren(enrollForm(expand, collapse));
      node.querySelector("input")?.focus();
    };
    node.replaceChildren(open);
  };
  const expand = (enrollment: EnrollmentCreated) => {
    const status = el("p", { class: "joined", "aria-live": "polite" });
    shown = { enrollment, status };
    const done = el("button", { type: "button", id: "add-device-done" }, "Done");
    done.onclick = collapse;
    node.replaceChildren(commandsView(enrollment), status, done);
    update({ devices: [] });
  };
  const update = (listing: Pick<RunnerListing, "devices">) => {
    if (!shown) return;
    const { enrollment, status } = shown;
    const joined = (Array.isArray(listing.devices) ? listing.devices : []).filter(
      (d) => d.enrollment === enrollment.id,
    );
    const expired = Date.now() >= enrollment.expires_at;
    status.replaceChildren(
      ...joined.map(joinedLine),
      joined.length >= enrollment.uses
        ? ""
        : expired
          ? el("span", { class: "error" }, `The token expired at ${dateTime(enrollment.expires_at)}.`)
          : el("span", { class: "hint" }, joined.length ? "It may join more devices…" : "Waiting for the device…"),
    );
  };
  collapse();
  return { node, update };
}

/** One device that joined with the enrollment shown: "Connected: <name> (<id>)" once it is. */
function joinedLine(d: DeviceView): HTMLElement {
  const who = [el("bdi", {}, visible(d.name)), " (", el("bdi", {}, visible(d.id)), ")"];
  const [what, cls] = d.revoked_at
    ? ["Revoked: ", "error"]
    : d.connected
      ? ["Connected: ", "connected"]
      : ["Joined, not connected: ", "hint"];
  return el("span", { class: `device-line ${cls}`, "data-device": String(d.id) }, what, ...who);
}

/** The form asking for an enrollment; `created` gets the new enrollment, `cancel` closes it. */
function enrollForm(created: (e: EnrollmentCreated) => void, cancel: () => void): HTMLFormElement {
  const labels = el("input", { name: "labels", placeholder: "gpu, big-memory", autocomplete: "off" });
  const uses = el("input", { name: "uses", type: "number", min: 1, max: 1000, value: 1, required: true });
  const ttl = el(
    "select",
    { name: "ttl" },
    EXPIRIES.map(([value, text]) => el("option", { value, selected: value === DEFAULT_EXPIRY }, text)),
  );
  const error = el("p", { class: "error", role: "alert" });
  const submit = el("button", { type: "submit" }, "Create the join command");
  const back = el("button", { type: "button", class: "link" }, "Cancel");
  back.onclick = cancel;
  const form = el(
    "form",
    { id: "enroll", class: "enroll" },
    el("h3", {}, "Add a device"),
    el(
      "p",
      { class: "hint" },
      "A one-time token for the command that installs the runner on a device and joins it to this pool.",
    ),
    el("label", {}, "Labels ", labels, el("small", {}, " comma-separated, given to every device joining with it")),
    el("label", {}, "Uses ", uses, el("small", {}, " how many devices may join with it")),
    el("label", {}, "Expires after ", ttl),
    el("p", { class: "controls" }, submit, back),
    error,
  );
  form.onsubmit = async (e) => {
    e.preventDefault();
    submit.disabled = true;
    error.textContent = "";
    try {
      const request: EnrollmentRequest = {
        labels: labels.value.split(/[\s,]+/).filter(Boolean),
        uses: uses.valueAsNumber,
        ttl: ttl.value,
      };
      created(await post<EnrollmentCreated>("/api/enrollments", request));
    } catch (err) {
      fail(err, error);
      submit.disabled = false;
    }
  };
  return form;
}

/** The new enrollment: its commands in one tab per platform, its expiry, and the shown-once warning. */
function commandsView(enrollment: EnrollmentCreated): HTMLElement {
  const commands: Partial<JoinCommands> = enrollment.commands ?? { unix: enrollment.command };
  const platforms = PLATFORMS.filter((p) => typeof commands[p.key] === "string");
  const tabs = el("div", { class: "tabs", role: "tablist", "aria-label": "Platform" });
  const panels: HTMLElement[] = [];
  platforms.forEach((p, i) => {
    const tab = el(
      "button",
      {
        type: "button",
        role: "tab",
        id: `tab-${p.key}`,
        "aria-controls": `panel-${p.key}`,
        "aria-selected": String(i === 0),
        "data-platform": p.key,
      },
      p.label,
    );
    tab.onclick = () => {
      for (const t of tabs.children) t.setAttribute("aria-selected", String(t === tab));
      for (const panel of panels) panel.hidden = panel.id !== `panel-${p.key}`;
    };
    tabs.append(tab);
    const command = el("pre", { class: "command", "data-platform": p.key }, commands[p.key]);
    const copyButton = el("button", { type: "button", "data-copy": p.key }, "Copy");
    copyButton.onclick = () => void copy(command.textContent ?? "", command, copyButton);
    panels.push(
      el(
        "div",
        { role: "tabpanel", id: `panel-${p.key}`, "aria-labelledby": `tab-${p.key}`, hidden: i !== 0 },
        command,
        copyButton,
      ),
    );
  });
  const left = Math.max(0, enrollment.expires_at - Date.now());
  const given = Array.isArray(enrollment.labels) ? enrollment.labels.map(visible) : [];
  const labels = given.length ? `, with the labels ${given.join(", ")}` : "";
  const times = enrollment.uses === 1 ? "one device" : `${enrollment.uses} devices`;
  return el(
    "div",
    { class: "enrolled", "data-enrollment": String(enrollment.id) },
    el("h3", {}, "Run this on the device"),
    tabs,
    ...panels,
    el(
      "p",
      { class: "warning" },
      "The token in this command is shown only once: copy it now. Anyone who has it can join a device to this pool.",
    ),
    el(
      "p",
      { class: "hint" },
      `It joins ${times}${labels}, and expires at ${dateTime(enrollment.expires_at)} (in ${formatDuration(left)}).`,
    ),
  );
}
