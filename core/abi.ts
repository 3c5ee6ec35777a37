/**
 * The task ABI (v1) in one place: the key of a task instance (`id` or `id[index]`, built and
 * parsed here only), its map item, the `{{index}}`/`{{item}}`/`{{params.x}}` placeholders, the
 * stdin envelope with its inputs, how a dependency's output appears in it, and what an output is
 * served as. The run's state machine builds assignments with it; the runner resolves inputs with
 * it; the Worker and the CLI type outputs with it. docs/tasks.md describes it for task authors.
 */
import type { FileRef, NodeSpec } from "./dag/plan.js";

/** The map item of instance `index` (undefined for a plain task). */
export function itemOf(node: NodeSpec, index: number | null): unknown {
  if (index === null) return undefined;
  if (node.items) return node.items[index];
  if (node.range) return node.range[0] + index;
  return undefined;
}

/** The key of a task instance as users see it: `id` or `id[index]`. */
export function taskKey(node: string, index: number | null): string {
  return index === null ? node : `${node}[${index}]`;
}

const KEY = /^(.+?)(?:\[(\d+)\])?$/;

/** The node and index of a task key (the inverse of `taskKey`). */
export function parseTaskKey(key: string): { node: string; index: number | null } {
  const [, node, index] = KEY.exec(key) ?? [key, key];
  return { node: node, index: index === undefined ? null : Number(index) };
}

const PLACEHOLDER = /\{\{\s*(index|item|params\.([A-Za-z0-9_.-]+))\s*\}\}/g;

/** Replaces `{{index}}`, `{{item}}` and `{{params.x}}` in an arg or env value. */
export function substitute(
  template: string,
  index: number | null,
  item: unknown,
  params: Record<string, unknown>,
): string {
  return template.replace(PLACEHOLDER, (_all, what: string, param?: string) => {
    const value = what === "index" ? index : what === "item" ? item : lookup(params, param!);
    if (value === undefined || value === null) return "";
    return typeof value === "string" ? value : JSON.stringify(value);
  });
}

function lookup(params: Record<string, unknown>, path: string): unknown {
  let value: unknown = params;
  for (const part of path.split(".")) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * The deepest nesting of JSON a task's output may have to be taken as JSON: deeper, it is bytes
 * (every side serialises envelopes with recursion, which a deep enough document would exhaust).
 */
export const MAX_JSON_DEPTH = 100;

/**
 * The nesting depth of JSON text and how many values it holds (each array and object counts,
 * and each element and member), in one pass without parsing; the text need not be valid JSON.
 * Stops counting values at `maxValues` (returning more than that).
 */
export function jsonShape(text: string, maxValues = Infinity): { depth: number; values: number } {
  let depth = 0;
  let deepest = 0;
  let values = text.trim() === "" ? 0 : 1;
  for (let i = 0; i < text.length && values <= maxValues; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Skip a string, escapes and all.
      for (i++; i < text.length && text.charCodeAt(i) !== 0x22; i++) if (text.charCodeAt(i) === 0x5c) i++;
    } else if (c === 0x5b || c === 0x7b) {
      deepest = Math.max(deepest, ++depth);
      let j = i + 1;
      while (j < text.length && " \t\n\r".includes(text[j]!)) j++;
      if (text[j] !== "]" && text[j] !== "}") values++;
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c) values++;
  }
  return { depth: deepest, values };
}

/**
 * A dependency's output as the task ABI shows it: JSON when it is JSON (nested at most
 * MAX_JSON_DEPTH deep), else `{"$bytes": base64}`.
 */
export function outputValue(bytes: Uint8Array): unknown {
  if (!mayBeJson(bytes)) return { $bytes: toBase64(bytes) };
  try {
    const text = utf8.decode(bytes);
    if (jsonShape(text).depth > MAX_JSON_DEPTH) return { $bytes: toBase64(bytes) };
    return JSON.parse(text);
  } catch {
    return { $bytes: toBase64(bytes) };
  }
}

/**
 * The envelope of a task sent ahead of its last dependency (`Assignment.after`), with that
 * dependency's output written in at character `at`, as the run would have written it.
 */
export function fillEnvelope(stdin: string, at: number, output: Uint8Array): string {
  return stdin.slice(0, at) + JSON.stringify(outputValue(output)) + stdin.slice(at);
}

/**
 * The stdin document of one task instance (task ABI v1); `item` is its map item (a map over data
 * keeps its items in the run, not in the spec: `itemOf` gives the others).
 */
export function envelope(
  node: NodeSpec,
  index: number | null,
  inputs: Record<string, unknown>,
  attempt: number,
  item: unknown = itemOf(node, index),
): string {
  const doc: Record<string, unknown> = { task: taskKey(node.id, index), attempt, params: node.params, inputs };
  if (index !== null) {
    doc.item = item;
    doc.index = index;
  }
  return JSON.stringify(doc);
}

/**
 * How a file of a run's input stands in an envelope until the runner fetches it: {"$file":
 * {name, size, sha256, parts?}}; the runner replaces it with {name, size, sha256, "$bytes"}.
 */
export function fileMarker(file: FileRef): { $file: FileRef } {
  return { $file: file };
}

/** The blobs a file is stored as: itself, or its parts in order. */
export function fileBlobs(file: FileRef): string[] {
  return file.parts ? file.parts.map((p) => p.sha256) : [file.sha256];
}

/** The bytes JSON text may start with after its whitespace (and a byte order mark): `{["-0-9tfn`. */
const JSON_START = new Set([...'{["-0123456789tfn'].map((c) => c.charCodeAt(0)));

/** Whether `bytes` could be JSON text, judged by its first byte that is not whitespace. */
function mayBeJson(bytes: Uint8Array): boolean {
  let i = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  while (i < bytes.length && (bytes[i] === 0x20 || bytes[i] === 0x0a || bytes[i] === 0x0d || bytes[i] === 0x09)) i++;
  return i < bytes.length && JSON_START.has(bytes[i]!);
}

const BASE64 = new TextEncoder().encode("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
const PAD = 0x3d; // "="
const digits = new TextDecoder();

/**
 * Base64 without Buffer, so it runs in workerd and Node alike: the digits are written as bytes and
 * decoded as text once (a 5 MiB reducer envelope costs a few ms; `btoa` over a binary string cost
 * 150 ms in workerd and 280 ms in Node, docs/benchmarks.md).
 */
export function toBase64(bytes: Uint8Array): string {
  const n = bytes.length;
  const out = new Uint8Array(Math.ceil(n / 3) * 4);
  let j = 0;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (bytes[i]! << 16) | (bytes[i + 1]! << 8) | bytes[i + 2]!;
    out[j++] = BASE64[v >> 18]!;
    out[j++] = BASE64[(v >> 12) & 63]!;
    out[j++] = BASE64[(v >> 6) & 63]!;
    out[j++] = BASE64[v & 63]!;
  }
  if (i < n) {
    const two = i + 1 < n;
    const v = (bytes[i]! << 16) | (two ? bytes[i + 1]! << 8 : 0);
    out[j++] = BASE64[v >> 18]!;
    out[j++] = BASE64[(v >> 12) & 63]!;
    out[j++] = two ? BASE64[(v >> 6) & 63]! : PAD;
    out[j++] = PAD;
  }
  return digits.decode(out);
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

/** The image types an output may be served as, each known by its magic number. */
type RasterType = "image/png" | "image/jpeg" | "image/gif" | "image/webp";

/** The file extension `distro` gives an output of each served type. */
export const OUTPUT_EXTENSIONS: Record<RasterType | "application/json" | "application/octet-stream", string> = {
  "image/png": ".png",
  "image/jpeg": ".jpg",
  "image/gif": ".gif",
  "image/webp": ".webp",
  "application/json": ".json",
  "application/octet-stream": ".bin",
};

const ascii = (bytes: Uint8Array, at: number, text: string) =>
  [...text].every((ch, i) => bytes[at + i] === ch.charCodeAt(0));

/** The raster image type of `bytes` by magic number, or null. */
function rasterType(bytes: Uint8Array): RasterType | null {
  if (bytes[0] === 0x89 && ascii(bytes, 1, "PNG\r\n\x1a\n")) return "image/png";
  if (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return "image/jpeg";
  if (ascii(bytes, 0, "GIF87a") || ascii(bytes, 0, "GIF89a")) return "image/gif";
  if (ascii(bytes, 0, "RIFF") && ascii(bytes, 8, "WEBP")) return "image/webp";
  return null;
}

/**
 * How an output is served, decided from its bytes alone: what a runner claims is never used.
 * PNG, JPEG, GIF and WebP as images, valid JSON as JSON (inert under `nosniff`), anything else
 * (SVG, HTML, text, binary) as an attachment of opaque bytes, so no output can become a page.
 */
export function outputType(bytes: Uint8Array): { type: keyof typeof OUTPUT_EXTENSIONS; attachment: boolean } {
  const raster = rasterType(bytes);
  if (raster) return { type: raster, attachment: false };
  try {
    JSON.parse(utf8.decode(bytes));
    return { type: "application/json", attachment: false };
  } catch {
    return { type: "application/octet-stream", attachment: true };
  }
}
