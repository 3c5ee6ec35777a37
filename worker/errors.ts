/**
 * The one error convention of the Durable Objects' RPC methods. A method that can fail answers an
 * `Answer<T>`: its value, or a typed code with a message saying what went wrong. Return values
 * rather than thrown errors, because an Error subclass does not survive Durable Object RPC (only
 * its message does, and comparing message text is how statuses go wrong). `httpStatus` is the one
 * place a code becomes an HTTP status; the routes reach it through `valueOf`.
 */
import { HTTPException } from "hono/http-exception";

/** Why a Durable Object refused a call. */
export type ErrorCode = "not_found" | "conflict" | "forbidden";

export interface Refusal {
  ok: false;
  code: ErrorCode;
  message: string;
}

export type Answer<T> = { ok: true; value: T } | Refusal;

const STATUS = { not_found: 404, conflict: 409, forbidden: 403 } as const satisfies Record<ErrorCode, number>;

/** A successful answer. */
export function ok<T>(value: T): Answer<T> {
  return { ok: true, value };
}

/** A refusal: `code` decides the HTTP status, `message` is what the caller reads. */
export function refusal(code: ErrorCode, message: string): Refusal {
  return { ok: false, code, message };
}

/** The HTTP status of an error code. */
export function httpStatus(code: ErrorCode): (typeof STATUS)[ErrorCode] {
  return STATUS[code];
}

/** The value of an answer, or the HTTPException of its refusal (`app.onError` renders it as `{error}`). */
export function valueOf<T>(answer: Answer<T>): T {
  if (answer.ok) return answer.value;
  throw new HTTPException(httpStatus(answer.code), { message: answer.message });
}
