/**
 * Encoding and decoding of wire frames. `decode` never throws and never casts: it returns a
 * typed message or an error that says what was wrong with the frame.
 */
import {
  coordinatorMessage,
  MAX_FRAME_BYTES,
  runnerMessage,
  type CoordinatorMessage,
  type RunnerMessage,
  type RunnerMessageInput,
} from "./messages.js";
import { fastResults } from "./fast-results.js";

export type Decoded<T> = { ok: true; message: T } | { ok: false; error: string };

type Schema<T> = {
  safeParse(
    value: unknown,
  ): { success: true; data: T } | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
};

function decodeWith<T>(
  schema: Schema<T>,
  raw: string | ArrayBuffer | Uint8Array,
  fast?: (value: unknown) => T | undefined,
): Decoded<T> {
  if (typeof raw !== "string")
    return { ok: false, error: "binary frames are not part of the protocol; send JSON text" };
  if (raw.length > MAX_FRAME_BYTES)
    return { ok: false, error: `frame of ${raw.length} bytes exceeds ${MAX_FRAME_BYTES}` };
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (e) {
    return { ok: false, error: `frame is not JSON: ${(e as Error).message}` };
  }
  const vouched = fast?.(value);
  if (vouched !== undefined) return { ok: true, message: vouched };
  const parsed = schema.safeParse(value);
  if (parsed.success) return { ok: true, message: parsed.data };
  const issue = parsed.error.issues[0]!;
  const where = issue.path.map(String).join(".");
  const type = typeof value === "object" && value !== null && "type" in value ? String(value.type) : "?";
  return { ok: false, error: `invalid "${type}" frame${where ? ` at ${where}` : ""}: ${issue.message}` };
}

/** Decodes a frame sent by a runner (its hottest, `results`, by a checked path when it can: fast-results.ts). */
export function decodeRunnerMessage(raw: string | ArrayBuffer | Uint8Array): Decoded<RunnerMessage> {
  return decodeWith(runnerMessage, raw, fastResults);
}

/** Decodes a frame sent by the coordinator. */
export function decodeCoordinatorMessage(raw: string | ArrayBuffer | Uint8Array): Decoded<CoordinatorMessage> {
  return decodeWith(coordinatorMessage, raw);
}

/** Encodes a frame; the type parameter keeps each side to its own messages. */
export function encode(message: RunnerMessageInput | CoordinatorMessage): string {
  return JSON.stringify(message);
}
