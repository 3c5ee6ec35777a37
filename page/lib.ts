/**
 * What every view of the status page shares: the API token (kept in localStorage), requests to
 * the API with its types (core/api.ts), `el` (elements built with the DOM, never parsed from HTML,
 * so what the coordinator or a device sent stays text), the badges, tables and progress bar, and
 * the registry of what the current view runs in the background (`every`, `onLeave`, `stop`) with
 * `fail`, which shows an error or asks for the token again.
 */
import type { ErrorBody, Problem, TokenSelf } from "../core/api.js";
import { covers, type TokenScope } from "../core/tokens.js";

export const app = document.getElementById("app")!;

const TOKEN_KEY = "distro.token";
export const token = (): string => localStorage.getItem(TOKEN_KEY) ?? "";
export function saveToken(value: string): void {
  localStorage.setItem(TOKEN_KEY, value);
  signedIn = null;
}
export function forgetToken(): void {
  localStorage.removeItem(TOKEN_KEY);
  signedIn = null;
}

/** The signed-in token: its scope, and which token it is (`API_TOKEN` for the bootstrap token). */
interface SignedIn {
  scope: TokenScope;
  id: string;
  name: string;
}
let signedIn: SignedIn | null = null;

/** The token's scope and id, asked of the coordinator once per token (GET /api/tokens/self). */
export async function whoami(): Promise<SignedIn> {
  if (!signedIn) {
    const self = await api<TokenSelf>("/api/tokens/self");
    signedIn = { scope: self.scope, id: self.token?.id ?? "API_TOKEN", name: self.token?.name ?? "API_TOKEN" };
  }
  return signedIn;
}
/** Whether the signed-in token has at least `scope` (after `whoami`); the coordinator checks anyway. */
export const may = (scope: TokenScope): boolean => signedIn !== null && covers(signedIn.scope, scope);
/** Whether it may pause, resume, cancel and retry `run`: an admin token any run, a submit token its own. */
export const mayControl = (run: { submitted_by: { token: string } | null }): boolean =>
  may("admin") || (may("submit") && run.submitted_by?.token === signedIn?.id);

type Child = Node | string | number | null | undefined | false;
type Attrs = Record<string, string | number | boolean | null | undefined>;

/**
 * A `tag` element built with the DOM: `attrs` become attributes (skipped when null, undefined
 * or false; `true` sets an empty one), every string child a text node, so nothing a device or a
 * DAG sent can turn into markup.
 */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs))
    if (value !== null && value !== undefined && value !== false)
      node.setAttribute(name, value === true ? "" : String(value));
  append(node, children);
  return node;
}

function append(node: Element, children: (Child | Child[])[]): void {
  for (const c of children.flat())
    if (c !== null && c !== undefined && c !== false) node.append(typeof c === "number" ? String(c) : c);
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** An SVG element, as `el` builds HTML ones. */
export function svg(tag: string, attrs: Attrs = {}, ...children: (Child | Child[])[]): SVGElement {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs))
    if (value !== null && value !== undefined && value !== false) node.setAttribute(name, String(value));
  append(node, children);
  return node;
}

// Controls and the characters that reorder or hide text (bidi marks, overrides and isolates,
// zero-width characters, separators, the BOM), as the CLI's terminal.ts escapes them.

const HIDDEN = /[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/g;
/** A field a device chose (its name, its labels) as shown: what would reorder or hide text made a visible `\u202e`. */
export const visible = (s: string | number | null | undefined): string =>
  String(s ?? "").replace(HIDDEN, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);

/** A task, run or attempt state as a coloured badge. */
export const badge = (state: string): HTMLElement => el("span", { class: `state ${state}` }, state);

/** A table: a header row of `columns`, then `rows`. */
export function table(cls: string, columns: string[], rows: Node[]): HTMLTableElement {
  return el(
    "table",
    { class: cls },
    el(
      "thead",
      {},
      el(
        "tr",
        {},
        columns.map((c) => el("th", { scope: "col" }, c)),
      ),
    ),
    el("tbody", {}, rows),
  );
}

/** A bar of done/total, drawn in SVG (the page's policy allows no inline style), and the figures. */
export function progress(done: number, total: number): HTMLElement {
  const pct = total ? Math.round((done / total) * 100) : 100;
  const bar = svg(
    "svg",
    { class: "bar", viewBox: "0 0 100 8", preserveAspectRatio: "none", "aria-hidden": "true" },
    svg("rect", { class: "track", width: 100, height: 8, rx: 3 }),
    svg("rect", { class: "fill", width: pct, height: 8, rx: 3 }),
  );
  return el("span", { class: "progress" }, bar, ` ${done}/${total}`);
}

/** A refused token: the page asks for another. */
export class Unauthorized extends Error {}

/** An answer of 4xx or 5xx: its message, and the located problems of a refused DAG or module. */
export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

/** `fetch` with the token; an answer that is not 2xx throws (ApiError, or Unauthorized for 401). */
export async function request(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("Authorization", `Bearer ${token()}`);
  const res = await fetch(path, { ...init, headers });
  if (res.status === 401) throw new Unauthorized("the token was not accepted");
  if (!res.ok) {
    const body = (await res.json().catch(() => ({}))) as Partial<ErrorBody>;
    throw new ApiError(body.error ?? `HTTP ${res.status}`, res.status, body.problems ?? []);
  }
  return res;
}
/** A JSON answer of the API, typed as core/api.ts says it is. */
export const api = async <T>(path: string, init?: RequestInit): Promise<T> =>
  (await request(path, init)).json() as Promise<T>;
/** A POST of `body` as JSON. */
export const post = <T>(path: string, body: unknown): Promise<T> =>
  api<T>(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });

/** What the current view runs in the background (timers, the watch socket), stopped on leaving it. */
const stops: (() => void)[] = [];
/** Counts the views shown: a view that awaited an answer checks it is still the one shown (`current`). */
let shown = 0;
/** Registers `fn` to run when the current view is left (a timer cleared, a socket closed, a URL revoked). */
export function onLeave(fn: () => void): void {
  stops.push(fn);
}
/** Leaves the current view: what it runs in the background stops, and its pending answers are ignored. */
export function stop(): void {
  shown++;
  for (const s of stops.splice(0)) s();
}
/**
 * A check for the view being drawn now: false once the user went elsewhere, so that an answer
 * arriving late draws nothing and starts nothing (the address said another run meanwhile).
 */
export function current(): () => boolean {
  const mine = shown;
  return () => mine === shown;
}

/** The current view's error line. */
const errorBox = (): HTMLElement | null => document.getElementById("error");

/** Runs `fn` now and every `ms` until the view is left; an error is shown, and retried more slowly. */
export function every(ms: number, fn: () => Promise<void>): Promise<void> {
  let alive = true;
  let timer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the error line shows this loop's own failure (an error a click made stays). */
  let failed = false;
  const tick = async () => {
    let wait = ms;
    try {
      await fn();
      const box = errorBox();
      if (box && failed) box.textContent = "";
      failed = false;
    } catch (e) {
      fail(e);
      failed = true;
      if (e instanceof Unauthorized) return;
      wait = Math.max(ms, 5000); // keep trying: the coordinator may be restarting
    }
    if (alive) timer = setTimeout(() => void tick(), wait);
  };
  onLeave(() => {
    alive = false;
    clearTimeout(timer);
  });
  return tick();
}

/** What a refused token leads to: main.ts sets it to its login form (a setter keeps the modules out of a cycle). */
let onUnauthorized: (message: string) => void = () => {};
export function whenUnauthorized(fn: (message: string) => void): void {
  onUnauthorized = fn;
}
/** Shows `e` in `box` (the view's error line by default), or asks for the token again when it was refused. */
export function fail(e: unknown, box: HTMLElement | null = errorBox()): void {
  if (e instanceof Unauthorized) return onUnauthorized(e.message);
  const message = `Error: ${e instanceof Error ? e.message : String(e)}`;
  if (box) box.textContent = message;
  else app.replaceChildren(el("p", { class: "error", role: "alert" }, message));
}

/** An object URL for `bytes` as `type`, revoked when the view is left. */
export function objectUrl(bytes: BlobPart, type: string): string {
  const url = URL.createObjectURL(new Blob([bytes], { type }));
  onLeave(() => URL.revokeObjectURL(url));
  return url;
}

/** Copies `text` to the clipboard (or selects `node` for the user to copy where the page may not), told on `button`. */
export async function copy(text: string, node: Node, button: HTMLButtonElement): Promise<void> {
  const label = button.textContent;
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch {
    // No clipboard here (a page over plain http from another address) or no permission.
    getSelection()?.selectAllChildren(node);
  }
  button.textContent = copied ? "Copied" : "Selected: press Ctrl+C to copy";
  setTimeout(() => (button.textContent = label), 2000);
}
