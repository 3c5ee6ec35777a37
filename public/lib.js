// What every view of the status page shares: the API token (kept in localStorage), requests to the
// API, HTML escaping and `el` (elements built without HTML, for strings from the coordinator), the
// formatting of times, durations and sizes, table rows, the progress bar, and the registry of what
// the current view runs in the background (`every`, `onLeave`, `stop`) with `fail`, which shows an
// error or asks for the token again. Used by app.js, lists.js, add-device.js and run-view.js.
// Times and durations come from format.js (pure, so unit tests import it), re-exported here.
export { cooledDown, duration, time } from "./format.js";

export const app = document.getElementById("app");
const tokenKey = "distro.token";
export const token = () => localStorage.getItem(tokenKey) ?? "";
export const saveToken = (value) => {
  localStorage.setItem(tokenKey, value);
  signedIn = null;
};
export const forgetToken = () => {
  localStorage.removeItem(tokenKey);
  signedIn = null;
};

// What the token may do (GET /api/tokens/self: its scope, and which token it is), asked once per
// token, so that the views show only the controls it may use (the coordinator checks them anyway).
const SCOPES = ["read", "submit", "admin"];
let signedIn = null;
/** The token's scope and id (`API_TOKEN` for the bootstrap token), asked of the coordinator once. */
export async function whoami() {
  if (!signedIn) {
    const self = await api("/api/tokens/self");
    signedIn = { scope: self.scope, id: self.token?.id ?? "API_TOKEN", name: self.token?.name ?? "API_TOKEN" };
  }
  return signedIn;
}
/** Whether the signed-in token has at least `scope` (call after `whoami`). */
export const may = (scope) => signedIn !== null && SCOPES.indexOf(signedIn.scope) >= SCOPES.indexOf(scope);
/** Whether it may pause, resume and cancel `run`: an admin token any run, a submit token those it submitted. */
export const mayControl = (run) => may("admin") || (may("submit") && run.submitted_by?.token === signedIn.id);

/**
 * A `tag` element built with the DOM, never parsed from HTML: `attrs` become attributes (skipped
 * when null, undefined or false; `true` sets an empty one) and every string child becomes a text
 * node, so what the coordinator or a device sent can never turn into markup.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs))
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  node.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

// Controls and the characters that reorder or hide text (bidi marks, overrides and isolates,
// zero-width characters, separators, the BOM), as the CLI's terminal.ts escapes them.
const HIDDEN = /[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;
/** A field a device chose (its name, its labels) as shown: what would reorder or hide text made a visible `\u202e`. */
export const visible = (s) =>
  String(s ?? "").replace(HIDDEN, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

export const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
export const badge = (state) => `<span class="state ${esc(state)}">${esc(state)}</span>`;
/** A moment as date and time, for what may be days away (an expiry, an enrollment). */
export const dateTime = (ms) => (ms ? new Date(ms).toLocaleString() : "");

/** A table's header row, one `<th>` per column name. */
export const headerRow = (columns) => `<tr>${columns.map((c) => `<th>${c}</th>`).join("")}</tr>`;
/** A table row: `attrs` on the `<tr>` (its data-* name), one `<td>` per cell (HTML). */
export const tableRow = (attrs, cells) => `<tr ${attrs}>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;

export function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  for (; n >= 1024 && i < units.length - 1; i++) n /= 1024;
  return `${i ? n.toFixed(1) : n} ${units[i]}`;
}

class Unauthorized extends Error {}

export async function request(path, init = {}) {
  const res = await fetch(path, { ...init, headers: { Authorization: `Bearer ${token()}`, ...init.headers } });
  if (res.status === 401) throw new Unauthorized("the token was not accepted");
  if (!res.ok) throw new Error((await res.json().catch(() => ({}))).error ?? `HTTP ${res.status}`);
  return res;
}
export const api = async (path, init) => (await request(path, init)).json();

/** What the current view runs in the background (timers, the watch socket); stopped on leaving it. */
const stops = [];
/** Registers `fn` to run when the current view is left (a timer cleared, a socket closed, a URL revoked). */
export function onLeave(fn) {
  stops.push(fn);
}
export function stop() {
  for (const s of stops.splice(0)) s();
}
export function every(ms, fn) {
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
  onLeave(() => {
    alive = false;
    clearTimeout(timer);
  });
  return tick();
}

/** What a refused token leads to: app.js sets it to its login form (a setter keeps the modules out of a cycle). */
let onUnauthorized = () => {};
export function whenUnauthorized(fn) {
  onUnauthorized = fn;
}
/** Shows `e` in `box` (the view's error line by default), or asks for the token again when it was refused. */
export function fail(e, box = document.getElementById("error")) {
  if (e instanceof Unauthorized) return onUnauthorized(e.message);
  if (box) box.textContent = `Error: ${e.message}`;
  else app.innerHTML = `<p class="error">Error: ${esc(e.message)}</p>`;
}

/** A bar of done/total, drawn in SVG (the page's policy allows no inline style). */
export function progress(done, total) {
  const pct = total ? Math.round((done / total) * 100) : 100;
  return `<svg class="bar" viewBox="0 0 100 8" preserveAspectRatio="none" aria-hidden="true">
    <rect class="track" width="100" height="8" rx="3"/><rect class="fill" width="${pct}" height="8" rx="3"/>
    </svg> ${done}/${total}`;
}
