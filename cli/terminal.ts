/**
 * Text from the coordinator made safe to print on a terminal. Run and task names, ids, errors,
 * stderr and outputs come from DAG authors and devices nobody vouches for: a raw ESC, CSI or OSC
 * in them could clear the screen, move the cursor, retitle the window or hide a line. Every C0
 * and C1 control character (and the bidirectional overrides, which reorder what is shown) is
 * printed as a visible escape such as `\x1b` instead.
 */

const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
const CONTROL_OR_NEWLINE = /[\x00-\x08\x0a-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

const visible = (ch: string) => {
  const code = ch.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
};

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
