/**
 * Text from the coordinator made safe to print on a terminal. Run and task names, ids, errors,
 * stderr and outputs come from DAG authors and devices nobody vouches for: a raw ESC, CSI or OSC
 * in them could clear the screen, move the cursor, retitle the window or hide a line. Every C0
 * and C1 control character (and the bidirectional overrides, which reorder what is shown) is
 * printed as a visible escape such as `\u001b` instead.
 */

// C0 and C1 controls, DEL, and the characters that reorder or hide text: bidi marks, embeddings,
// overrides and isolates, zero-width characters, line and paragraph separators, the BOM.
const HIDDEN = "\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069\\ufeff";
const CONTROL = new RegExp(`[\\x00-\\x08\\x0b-\\x1f${HIDDEN}]`, "g");
const CONTROL_OR_NEWLINE = new RegExp(`[\\x00-\\x08\\x0a-\\x1f${HIDDEN}]`, "g");

/** `\u001b`: readable on a terminal, and a valid escape inside JSON too (`--json` output stays JSON). */
const visible = (ch: string) => `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** What the coordinator's answers hold: text, numbers, flags, or nothing. */
type Printable = string | number | boolean | null | undefined;

/** One field (a name, an id, a status): every control character escaped, newlines and tabs included. */
export function safe(value: Printable): string {
  return String(value ?? "")
    .replace(/[\t]/g, " ")
    .replace(CONTROL_OR_NEWLINE, visible);
}

/** Lines of text (stderr, an output shown inline, a message): control characters escaped, newlines and tabs kept. */
export function safeText(value: Printable): string {
  return String(value ?? "").replace(CONTROL, visible);
}
