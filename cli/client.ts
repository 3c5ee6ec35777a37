/**
 * A small client for the coordinator's HTTP API, used by the `distro` CLI, `npm start`, the
 * benchmark and end-to-end tests. Every non-2xx answer becomes an ApiError carrying the
 * coordinator's JSON error (and its problems, for a rejected DAG).
 */
import WebSocket from "ws";
import {
  IDEMPOTENCY_HEADER,
  type ControlAnswer,
  type DeleteAnswer,
  type EnrollmentCreated,
  type EnrollmentRequest,
  type ModuleInfo,
  type ErrorBody,
  type RetryAnswer,
  type Problem,
  type RevokeAnswer,
  type RunListing,
  type RunnerListing,
  type RunSummary,
  type RunView,
  type SubmitAnswer,
  type SubmitBody,
  type TokenCreated,
  type TokenView,
  type TrustAnswer,
} from "../core/api.js";
import type { TokenScope } from "../core/tokens.js";
import type { WatchMessage } from "../core/protocol/watch.js";
import { HEARTBEAT } from "../core/protocol/messages.js";
import { isFinal } from "../core/status.js";

/** How `follow` reconnects: the first delay, doubled after each failure up to `max`. */
const RECONNECT_MS = { first: 250, max: 5000 } as const;
/** `follow` gives up after this long without a connection to the coordinator. */
const FOLLOW_GIVE_UP_MS = 10 * 60_000;
/** How often a watch socket is pinged; one ping unanswered this long drops it. */
const PING_MS = 15_000;
/** How often `wait` (and `follow` without a socket) asks for the run's summary. */
const POLL_MS = 250;

/** What `follow` tells of its connection: lost (once per outage, saying why), then back. */
export type LinkEvent = { type: "lost"; reason: string } | { type: "reconnected"; afterMs: number };

export interface FollowOptions {
  /** Hears of each outage once, and of its end. */
  onLink?: (event: LinkEvent) => void;
  /** How long without a connection before giving up (default FOLLOW_GIVE_UP_MS). */
  giveUpMs?: number;
}

/** How one watch socket (or one stretch of polling) ended. */
type WatchSession = { type: "ended"; run: RunSummary } | { type: "dropped"; reason: string } | { type: "unsupported" };

/**
 * A GET or HEAD whose answer has not begun in this long is sent again, twice at most: under
 * `wrangler dev` a request is now and then lost between its proxy and the Worker, and would hang
 * for undici's five minutes (docs/reliability.md). So is a submission under an Idempotency-Key,
 * which also tries again when its connection failed, or when the coordinator says it is still
 * making the run the key names (409 with Retry-After): the coordinator makes one run of it
 * however often it is sent. Other requests are sent once.
 */
const ANSWER_MS = 30_000;
const IDEMPOTENT_TRIES = 3;
/** The pause before a keyed submission whose connection failed is sent again. */
const RETRY_PAUSE_MS = 1000;
/** How long a keyed submission waits, in all, for a run the coordinator says is still starting. */
const STARTING_WAIT_MS = 60_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

/** A piece of an attempt's stderr (`GET /api/dags/:id/tasks/:task/logs`) and what its headers say. */
export interface LogPage {
  bytes: Uint8Array;
  attempt: number;
  running: boolean;
  /** The offset to ask for next. */
  next: number;
  /** Bytes of the attempt's stderr that were cut (past 1 MiB, or never sent), null when none. */
  cut: number | null;
}

export class Client {
  constructor(
    readonly coordinator: URL,
    private readonly token: string,
    /** How long a GET or HEAD waits for its answer to begin before it is sent again. */
    private readonly answerMs = ANSWER_MS,
  ) {}

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = new URL(path, this.coordinator);
    const method = (init.method ?? "GET").toUpperCase();
    const keyed = new Headers(init.headers).has(IDEMPOTENCY_HEADER);
    const tries = (method === "GET" || method === "HEAD" || keyed) && !init.signal ? IDEMPOTENT_TRIES : 1;
    let res: Response | undefined;
    let waited = 0;
    for (let k = 1; !res; k++) {
      const unanswered = new AbortController();
      const timer = tries > 1 ? setTimeout(() => unanswered.abort(), this.answerMs) : undefined;
      try {
        res = await fetch(url, {
          ...init,
          signal: init.signal ?? unanswered.signal,
          headers: { Authorization: `Bearer ${this.token}`, ...init.headers },
        });
      } catch (e) {
        if (unanswered.signal.aborted && k < tries) continue;
        if (keyed && k < tries) {
          await sleep(RETRY_PAUSE_MS);
          continue;
        }
        const cause = (e as { cause?: { code?: string; message?: string } }).cause;
        const why = unanswered.signal.aborted
          ? `no answer to ${method} ${url.pathname} in ${this.answerMs / 1000} s, ${tries} times`
          : (cause?.code ?? cause?.message ?? (e as Error).message);
        throw new ApiError(0, `cannot reach the coordinator at ${this.coordinator.origin}: ${why}`);
      } finally {
        clearTimeout(timer);
      }
      // Still starting the key's run: asked again as the answer says, for up to a minute, which
      // costs none of the tries (the coordinator did answer).
      const later = res?.headers.get("Retry-After");
      if (keyed && res?.status === 409 && later != null && Number(later) >= 0 && waited < STARTING_WAIT_MS) {
        await res.body?.cancel();
        res = undefined;
        const ms = Math.min(Number(later), 10) * 1000 || 100;
        waited += ms;
        k--;
        await sleep(ms);
      }
    }
    if (res.ok) return res;
    const text = await res.text();
    let body: Partial<ErrorBody> = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = { error: text.slice(0, 500) };
    }
    // An answer that is not the coordinator's (an empty or foreign body) still says its status.
    const said = typeof body.error === "string" && body.error.trim() !== "" ? body.error : undefined;
    const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
    throw new ApiError(
      res.status,
      said ?? `${status} from ${this.coordinator.origin} (is it a Distro coordinator?)`,
      body.problems ?? [],
    );
  }

  async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  uploadModule(name: string, bytes: Uint8Array<ArrayBuffer>): Promise<ModuleInfo> {
    return this.json(`/api/modules/${encodeURIComponent(name)}`, {
      method: "PUT",
      body: new Blob([bytes]),
      headers: { "Content-Type": "application/wasm" },
    });
  }

  /**
   * Submits a DAG; with params or inputs, as a JSON submission (`SubmitBody`). Under `key` (an
   * Idempotency-Key) it may be sent again, and makes one run however often it is.
   */
  submit(yaml: string, extra: Omit<SubmitBody, "dag"> = {}, key?: string): Promise<SubmitAnswer> {
    const keyed: Record<string, string> = key === undefined ? {} : { [IDEMPOTENCY_HEADER]: key };
    if (Object.keys(extra.params ?? {}).length === 0 && Object.keys(extra.inputs ?? {}).length === 0)
      return this.json("/api/dags", {
        method: "POST",
        body: yaml,
        headers: { "Content-Type": "application/yaml", ...keyed },
      });
    const body: SubmitBody = { dag: yaml, ...extra };
    return this.json("/api/dags", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", ...keyed },
    });
  }

  /** Whether the coordinator has the blob `sha256`. */
  async hasBlob(sha256: string): Promise<boolean> {
    try {
      await this.request(`/api/blobs/sha256:${sha256}`, { method: "HEAD" });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return false;
      throw e;
    }
  }

  /** Uploads a blob, streamed, telling `onSent` how many bytes have gone. */
  async putBlob(sha256: string, bytes: Uint8Array, onSent: (bytes: number) => void = () => {}): Promise<void> {
    const step = 256 * 1024;
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) {
          controller.close();
          return;
        }
        const piece = bytes.subarray(at, Math.min(at + step, bytes.length));
        at += piece.length;
        controller.enqueue(piece);
        onSent(at);
      },
    });
    await this.request(`/api/blobs/sha256:${sha256}`, {
      method: "PUT",
      body,
      duplex: "half",
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(bytes.length) },
    } as RequestInit);
  }

  /** The run with its nodes and every task and attempt. */
  run(id: string): Promise<RunView> {
    return this.json(`/api/dags/${encodeURIComponent(id)}`);
  }

  /** The run's status and counts only: cheap to poll, whatever the run's size. */
  summary(id: string): Promise<RunSummary> {
    return this.json(`/api/dags/${encodeURIComponent(id)}?summary`);
  }

  /**
   * New attempts for a run's failed, skipped and cancelled tasks (or `tasks` and their skipped
   * dependents); with `from`, a new linked run that re-runs that task and what depends on it.
   */
  retry(id: string, how: { tasks?: string[]; from?: string } = {}): Promise<RetryAnswer> {
    return this.json(`/api/dags/${encodeURIComponent(id)}/retry`, {
      method: "POST",
      body: JSON.stringify(how),
      headers: { "Content-Type": "application/json" },
    });
  }

  control(id: string, action: "cancel" | "pause" | "resume"): Promise<ControlAnswer> {
    return this.json(`/api/dags/${encodeURIComponent(id)}/${action}`, { method: "POST" });
  }

  async output(id: string, task: string): Promise<Uint8Array> {
    return (await this.outputWithType(id, task)).bytes;
  }

  async outputWithType(id: string, task: string): Promise<{ bytes: Uint8Array; type: string }> {
    const res = await this.request(`/api/dags/${encodeURIComponent(id)}/tasks/${encodeURIComponent(task)}/output`);
    return {
      bytes: new Uint8Array(await res.arrayBuffer()),
      type: res.headers.get("Content-Type") ?? "application/octet-stream",
    };
  }

  /** The stderr of `task`'s attempt (the latest unless `attempt`) from byte `offset`. */
  async logs(
    id: string,
    task: string,
    { attempt, offset = 0 }: { attempt?: number; offset?: number } = {},
  ): Promise<LogPage> {
    const query = new URLSearchParams({ offset: String(offset) });
    if (attempt !== undefined) query.set("attempt", String(attempt));
    const res = await this.request(
      `/api/dags/${encodeURIComponent(id)}/tasks/${encodeURIComponent(task)}/logs?${query}`,
    );
    const cut = res.headers.get("X-Log-Cut");
    return {
      bytes: new Uint8Array(await res.arrayBuffer()),
      attempt: Number(res.headers.get("X-Log-Attempt")),
      running: res.headers.get("X-Log-Running") === "true",
      next: Number(res.headers.get("X-Log-Next") ?? offset),
      cut: cut === null ? null : Number(cut),
    };
  }

  /**
   * Follows a run to its end over its watch socket, calling `onRun` with every snapshot and
   * update. A socket that drops, or a coordinator that restarts, is reconnected with back-off
   * (RECONNECT_MS), each time with a fresh snapshot, until the run is final; `onLink` hears of
   * each outage once, and of its end. Gives up (an ApiError of status 0) only after `giveUpMs`
   * without a connection. Polls, with the same patience, only where the socket cannot work at all
   * (a 426, or an answer that is not an upgrade). A refusal (404, 401…) is an ApiError at once.
   */
  async follow(
    id: string,
    onRun: (run: RunSummary) => void = () => {},
    { onLink = () => {}, giveUpMs = FOLLOW_GIVE_UP_MS }: FollowOptions = {},
  ): Promise<RunSummary> {
    let polling = false;
    let delay: number = RECONNECT_MS.first;
    let connectedAt = Date.now();
    let outage: { since: number; reason: string } | undefined;
    const connected = () => {
      connectedAt = Date.now();
      delay = RECONNECT_MS.first;
      if (outage) onLink({ type: "reconnected", afterMs: connectedAt - outage.since });
      outage = undefined;
    };
    for (;;) {
      const session = polling ? await this.poll(id, onRun, connected) : await this.watchOnce(id, onRun, connected);
      if (session.type === "ended") return session.run;
      if (session.type === "unsupported") {
        polling = true;
        continue;
      }
      if (!outage) {
        outage = { since: Date.now(), reason: session.reason };
        onLink({ type: "lost", reason: session.reason });
      }
      if (Date.now() - connectedAt >= giveUpMs)
        throw new ApiError(
          0,
          `lost the coordinator at ${this.coordinator.origin} for ${Math.round((Date.now() - connectedAt) / 60_000)} min ` +
            `(${session.reason}); stopped following run ${id}`,
        );
      await sleep(delay);
      delay = Math.min(delay * 2, RECONNECT_MS.max);
    }
  }

  /** One watch socket: resolves with the run as soon as an update says it ended; rejects if the socket breaks first. */
  async watch(id: string, onRun: (run: RunSummary) => void): Promise<RunSummary> {
    const session = await this.watchOnce(id, onRun);
    if (session.type === "ended") return session.run;
    throw new Error(session.type === "dropped" ? session.reason : "the coordinator did not upgrade the watch socket");
  }

  /**
   * One watch socket, until the run ends (`ended`), the socket breaks (`dropped`, to reconnect) or
   * the coordinator answers with something that is not an upgrade (`unsupported`); `onOpen` once
   * it is open. A "ping" every PING_MS that gets no answer (the coordinator answers "pong" without
   * waking the run) means a connection gone quiet, dropped too. A 4xx refusal rejects.
   */
  private watchOnce(
    id: string,
    onRun: (run: RunSummary) => void,
    onOpen: () => void = () => {},
  ): Promise<WatchSession> {
    return new Promise((resolve, reject) => {
      const url = new URL(`/api/dags/${encodeURIComponent(id)}/watch`, this.coordinator);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(url, {
        headers: { Authorization: `Bearer ${this.token}` },
        perMessageDeflate: false,
        handshakeTimeout: 30_000,
      });
      let last: RunSummary | undefined;
      let heard = true;
      let pinger: NodeJS.Timeout | undefined;
      let settled = false;
      const settle = (session: WatchSession | ApiError) => {
        if (settled) return;
        settled = true;
        clearInterval(pinger);
        ws.terminate();
        if (session instanceof ApiError) reject(session);
        else resolve(session);
      };
      let opened = false;
      ws.on("open", () => {
        pinger = setInterval(() => {
          if (!heard)
            return settle({ type: "dropped", reason: `no answer from the watch socket in ${PING_MS / 1000} s` });
          heard = false;
          ws.send(HEARTBEAT.ping);
        }, PING_MS);
      });
      ws.on("message", (data) => {
        heard = true;
        const text = (
          Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
        ).toString();
        if (text === HEARTBEAT.pong) return;
        let message: WatchMessage;
        try {
          message = JSON.parse(text) as WatchMessage;
        } catch {
          return; // not a frame of ours: the next snapshot or update says what the run is
        }
        // Connected once the run itself answers, not when a socket merely opens (a proxy that
        // upgrades and closes at once must not reset the back-off).
        if (!opened) {
          opened = true;
          onOpen();
        }
        last = message.run;
        onRun(last);
        if (isFinal(last.status)) settle({ type: "ended", run: last });
      });
      ws.on("unexpected-response", (_request, response) => {
        const status = response.statusCode ?? 0;
        let body = "";
        response.setEncoding("utf8");
        response.on("data", (chunk: string) => (body = (body + chunk).slice(0, 10_000)));
        response.on("error", () => settle({ type: "dropped", reason: `HTTP ${status}` }));
        response.on("end", () => {
          if (status === 426 || (status >= 200 && status < 400)) return settle({ type: "unsupported" });
          if (status === 429 || status >= 500) return settle({ type: "dropped", reason: `HTTP ${status}` });
          let said: string | undefined;
          try {
            said = (JSON.parse(body) as Partial<ErrorBody>).error;
          } catch {
            said = undefined;
          }
          settle(
            new ApiError(status, typeof said === "string" && said !== "" ? said : `HTTP ${status} for ${url.pathname}`),
          );
        });
      });
      ws.on("close", (code) => settle({ type: "dropped", reason: `the watch socket closed with code ${code}` }));
      ws.on("error", (e) => settle({ type: "dropped", reason: (e as Error & { code?: string }).code ?? e.message }));
    });
  }

  /** `follow` by polling: `ended`, or `dropped` when the coordinator cannot be reached; a refusal rejects. */
  private async poll(id: string, onRun: (run: RunSummary) => void, onRead: () => void): Promise<WatchSession> {
    try {
      return { type: "ended", run: await this.wait(id, onRun, POLL_MS, onRead) };
    } catch (e) {
      if (e instanceof ApiError && (e.status === 0 || e.status === 429 || e.status >= 500))
        return { type: "dropped", reason: e.message };
      throw e;
    }
  }

  runs(limit = 20): Promise<{ runs: RunListing[] }> {
    return this.json(`/api/dags?limit=${limit}`);
  }

  /** Connected runner processes and every enrolled device. */
  runners(): Promise<RunnerListing> {
    return this.json("/api/runners");
  }

  /** A new enrollment: its token (shown once) and the commands that join a device with it. */
  enroll(request: EnrollmentRequest): Promise<EnrollmentCreated> {
    return this.json("/api/enrollments", {
      method: "POST",
      body: JSON.stringify(request),
      headers: { "Content-Type": "application/json" },
    });
  }

  /** Deletes a finished run: its storage, logs and index line (blobs only it held go at the next sweep). */
  deleteRun(id: string): Promise<DeleteAnswer> {
    return this.json(`/api/dags/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  /** A new scoped API token (shown in this answer only). */
  createToken(request: { name: string; scope: TokenScope; ttl?: string }): Promise<TokenCreated> {
    return this.json("/api/tokens", {
      method: "POST",
      body: JSON.stringify(request),
      headers: { "Content-Type": "application/json" },
    });
  }

  /** Every scoped API token, newest first (never the tokens themselves). */
  async tokens(): Promise<TokenView[]> {
    return (await this.json<{ tokens: TokenView[] }>("/api/tokens")).tokens;
  }

  /** Revokes a scoped API token: every later request with it gets 401. */
  revokeToken(id: string): Promise<TokenView> {
    return this.json(`/api/tokens/${encodeURIComponent(id)}`, { method: "DELETE" });
  }

  /** Revokes a device: its credential stops working and its sockets close. */
  revoke(device: string): Promise<RevokeAnswer> {
    return this.json(`/api/runners/${encodeURIComponent(device)}`, { method: "DELETE" });
  }

  /**
   * Trusts a device (its accepted outputs are filed in the result cache from now on), or untrusts
   * it, which purges the cache entries it produced.
   */
  trust(device: string, trusted: boolean): Promise<TrustAnswer> {
    return this.json(`/api/runners/${encodeURIComponent(device)}/trust`, { method: trusted ? "PUT" : "DELETE" });
  }

  /** Polls a run until it ends, calling `onChange` whenever its counts move (and `onRead` at every answer). */
  async wait(
    id: string,
    onChange: (run: RunSummary) => void = () => {},
    intervalMs = POLL_MS,
    onRead: () => void = () => {},
  ): Promise<RunSummary> {
    let last = "";
    for (;;) {
      const run = await this.summary(id);
      onRead();
      const key = `${run.status} ${JSON.stringify(run.counts)}`;
      if (key !== last) {
        last = key;
        onChange(run);
      }
      if (isFinal(run.status)) return run;
      await sleep(intervalMs);
    }
  }
}
