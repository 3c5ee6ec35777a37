/**
 * The enroll exchange: `POST /api/runners/enroll` with an enrollment token (or the development
 * RUNNER_TOKEN) as Bearer and the runner's name, answered with the device's id and credential.
 * A coordinator that cannot be reached (not up yet, restarting, answering 5xx) is tried again
 * with the sockets' back-off and one log line per attempt, since a runner may well start before
 * its coordinator; a refusal (401, 403, any other 4xx) is final and throws EnrollError with the
 * coordinator's own words ("enrollment X has been used 1 of 1 times").
 */
import type { EnrollAnswer } from "../core/api.js";
import { errorText } from "./answers.js";
import { retryDelay, seconds, type Backoff } from "./backoff.js";
import { DEFAULTS } from "./config.js";
import { decodeEnrollAnswer } from "./credential.js";
import type { Logger } from "./log.js";

/** The coordinator refused to enroll the device (`status`), or answered something that is no credential. */
export class EnrollError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** What the runner enrolls with, and what to call it in messages. */
export interface EnrollToken {
  token: string;
  /** "DISTRO_ENROLL" or "the development token (--token)". */
  source: string;
  /** The development token, with which a device may ask for its id. */
  dev?: boolean;
}

/** What the runner asks for: its name, and with the development token maybe its device id. */
export interface EnrollRequest {
  name: string;
  device?: string;
}

export interface EnrollOptions {
  log: Logger;
  backoff?: Backoff;
  random?: () => number;
  /** How long one request may take before it counts as unreachable (default 15 s). */
  timeoutMs?: number;
}

/** Exchanges `using` for this device's credential; retries until the coordinator answers. */
export async function enroll(
  coordinator: URL,
  using: EnrollToken,
  request: EnrollRequest,
  { log, backoff = DEFAULTS.reconnect, random = Math.random, timeoutMs = 15_000 }: EnrollOptions,
): Promise<EnrollAnswer> {
  const url = new URL("/api/runners/enroll", coordinator.origin.replace(/^ws/, "http"));
  const { origin } = url;
  for (let failures = 0; ; failures++) {
    let why: string;
    try {
      const res = await fetch(url, {
        method: "POST",
        headers: { Authorization: `Bearer ${using.token}`, "Content-Type": "application/json" },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      if (res.ok) {
        if (failures > 0) log.info(`enroll: reached ${origin} after ${failures} failed attempt(s)`);
        return answer(text);
      }
      const { status } = res;
      why = `HTTP ${status}${detail(text, res.statusText)}`;
      const refused = (message: string, hint = "") =>
        new EnrollError(`the coordinator ${origin} ${message} (${why})${hint}`, status);
      if (status === 401) throw refused(`does not accept ${using.source}`, `; ${HOW_TO_ENROLL}`);
      if (status === 403) throw refused(`refused to enroll this device with ${using.source}`);
      if (status === 404) throw refused("has no enrollment endpoint (is it older than this runner?)");
      if (status < 500 && status !== 408 && status !== 429) throw refused("would not enroll this device");
    } catch (e) {
      if (e instanceof EnrollError) throw e;
      why = unreachable(e as Error);
    }
    const delay = retryDelay(failures, backoff, random);
    log.info(`enroll: coordinator ${origin} not reachable (${why}); retry ${failures + 1} in ${seconds(delay)}`, {
      event: "enroll-retry",
      attempt: failures + 1,
    });
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
}

/** How to get something to enroll with: said whenever the runner has nothing that works. */
export const HOW_TO_ENROLL =
  "get an enrollment token with `distro runners add` on the coordinator's side (it prints the whole command) " +
  "and start the runner with DISTRO_ENROLL=<token> in its environment; a development coordinator (npm start) " +
  "also takes its RUNNER_TOKEN with --token (or DISTRO_RUNNER_TOKEN)";

function answer(text: string): EnrollAnswer {
  try {
    return decodeEnrollAnswer(JSON.parse(text));
  } catch (e) {
    throw new EnrollError((e as Error).message);
  }
}

const detail = (body: string, status: string) => {
  const text = errorText(body) ?? status;
  return text ? `: ${text}` : "";
};

/** Why a request did not get an answer, as `fetch` tells it (the cause holds the socket's error). */
function unreachable(e: Error): string {
  if (e.name === "TimeoutError") return "no answer in time";
  const cause = (e as { cause?: { message?: string; code?: string } }).cause;
  // Several addresses tried (localhost: ::1, then 127.0.0.1) give an AggregateError with no message.
  return cause?.message || cause?.code || e.message;
}
