/**
 * One outbound WebSocket to the coordinator that survives the coordinator going away: it
 * reconnects with capped exponential back-off and jitter, logging one line per attempt, until
 * it is closed, the coordinator ends it for good (run finished, replaced), or the coordinator
 * refuses the token. A socket closed for its rate limit (CLOSE.rateLimited) reconnects no sooner
 * than a floor of a few seconds, and later each time it is limited again soon after. Frames are
 * decoded and validated here, and heartbeats sent: a "ping" three times per heartbeat period the
 * coordinator announces in its welcome.
 */
import WebSocket from "ws";
import { decodeCoordinatorMessage, encode } from "../core/protocol/codec.js";
import {
  CLOSE,
  HEARTBEAT,
  MAX_FRAME_BYTES,
  type CoordinatorMessage,
  type RunnerMessage,
} from "../core/protocol/messages.js";
import { DEFAULTS } from "./config.js";
import type { Logger } from "./log.js";

export interface LinkOptions {
  url: URL;
  token: string;
  /** Names the link in log lines, e.g. "pool" or "run 3fa9…". */
  label: string;
  log: Logger;
  onOpen: () => void;
  onMessage: (message: CoordinatorMessage) => void;
  /** The link ended for good; `reason` says why. */
  onEnd: (reason: string, fatal: boolean) => void;
  /** `limitedMs`: the least wait before reconnecting after a rate-limit close. */
  backoff?: { initialMs: number; maxMs: number; factor: number; limitedMs: number };
  random?: () => number;
}

/** Close codes after which reconnecting would be wrong. */
const FINAL_CLOSES = new Set<number>([CLOSE.finished, CLOSE.replaced, CLOSE.protocol]);

export class Link {
  private ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pinger: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Rate-limit closes in a row, each soon after the socket opened (see `limited`). */
  private limits = 0;
  private openedAt = 0;
  private ended = false;

  constructor(private readonly options: LinkOptions) {}

  start(): void {
    this.connect();
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a frame if the socket is open; false when it is not (the frame is dropped). */
  send(message: RunnerMessage): boolean {
    if (!this.open) return false;
    this.ws!.send(encode(message));
    return true;
  }

  /** Closes the link for good. */
  close(reason = "closed by the runner"): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.ws?.close(1000, reason);
    this.options.onEnd(reason, false);
  }

  private connect(): void {
    const { url, token, log, label } = this.options;
    const ws = new WebSocket(toWs(url), {
      headers: { Authorization: `Bearer ${token}` },
      maxPayload: MAX_FRAME_BYTES,
      handshakeTimeout: 10_000,
      perMessageDeflate: false,
    });
    this.ws = ws;
    let refusal: string | undefined;
    ws.on("open", () => {
      if (this.failures > 0) log.info(`${label}: connected to ${url.origin} after ${this.failures} failed attempt(s)`);
      else log.debug(`${label}: connected to ${url.origin}`);
      this.failures = 0;
      this.openedAt = Date.now();
      this.options.onOpen();
    });
    ws.on("message", (data, isBinary) => {
      const bytes = frameBytes(data);
      if (!isBinary && bytes.toString() === HEARTBEAT.pong) return;
      const decoded = decodeCoordinatorMessage(isBinary ? new Uint8Array(bytes) : bytes.toString());
      if (!decoded.ok) return log.info(`${label}: ignored a bad frame from the coordinator: ${decoded.error}`);
      if (decoded.message.type === "welcome") this.heartbeat(ws, decoded.message.heartbeatMs);
      this.options.onMessage(decoded.message);
    });
    ws.on("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (chunk: Buffer) => (body += chunk.toString()));
      res.on("end", () => {
        const detail = errorText(body) ?? res.statusMessage ?? "";
        refusal = `HTTP ${res.statusCode}${detail ? `: ${detail}` : ""}`;
        ws.terminate();
        if (res.statusCode === 401 || res.statusCode === 403)
          return this.end(`the coordinator refused the token (${refusal})`, true);
        if (res.statusCode === 404) return this.end(`the coordinator does not know this endpoint (${refusal})`, true);
        this.retry(refusal);
      });
      res.on("error", () => this.retry(`HTTP ${res.statusCode}`));
    });
    ws.on("error", (err) => {
      refusal ??= err.message;
    });
    ws.on("close", (code, reason) => {
      if (this.ws !== ws) return;
      clearInterval(this.pinger);
      if (this.ended) return;
      if (FINAL_CLOSES.has(code))
        return this.end(reason.toString() || `closed with code ${code}`, code === CLOSE.protocol);
      if (code === CLOSE.rateLimited) return this.limited(reason.toString() || "rate limited");
      if (refusal === undefined || !refusal.startsWith("HTTP"))
        this.retry(refusal ?? `connection closed (code ${code})`);
    });
  }

  private heartbeat(ws: WebSocket, periodMs: number): void {
    clearInterval(this.pinger);
    this.pinger = setInterval(
      () => {
        if (ws.readyState === WebSocket.OPEN) ws.send(HEARTBEAT.ping);
      },
      Math.max(100, Math.floor(periodMs / 3)),
    );
  }

  /**
   * The coordinator closed the socket for sending too much. Opening again at once would only be
   * closed again, so the back-off does not start over (as after an ordinary open): it climbs with
   * each limit that follows soon after the last reconnect, from at least `limitedMs`.
   */
  private limited(reason: string): void {
    const { maxMs } = this.options.backoff ?? DEFAULTS.reconnect;
    // A socket that behaved for a while before this limit starts the climb again.
    this.limits = Date.now() - this.openedAt > maxMs ? 1 : this.limits + 1;
    this.retry(reason, true);
  }

  /** Reconnects after a delay: exponential in the failures so far (or, after a limit, in the limits in a row). */
  private retry(why: string, limited = false): void {
    if (this.ended || this.timer) return;
    const { initialMs, maxMs, factor, limitedMs } = this.options.backoff ?? DEFAULTS.reconnect;
    const random = this.options.random ?? Math.random;
    // A first limit waits as a fourth retry would (a ceiling of 4 s with the defaults; never less
    // than limitedMs), and each next one twice as long.
    const steps = limited ? this.limits + 2 : this.failures;
    const ceiling = Math.min(maxMs, initialMs * factor ** steps);
    const delay = Math.max(limited ? limitedMs : 0, Math.round(ceiling / 2 + (random() * ceiling) / 2));
    if (!limited) this.failures++;
    const { label, url, log } = this.options;
    const wait = `${(delay / 1000).toFixed(1)}s`;
    if (limited) log.info(`${label}: rate limited by the coordinator ${url.origin} (${why}); reconnecting in ${wait}`);
    else log.info(`${label}: coordinator ${url.origin} not reachable (${why}); retry ${this.failures} in ${wait}`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.ended) this.connect();
    }, delay);
  }

  private end(reason: string, fatal: boolean): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.ws?.terminate();
    this.options.onEnd(reason, fatal);
  }
}

/** A frame's bytes in whichever form `ws` hands them over (a Buffer, by default). */
function frameBytes(data: WebSocket.RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

function toWs(url: URL): string {
  const u = new URL(url);
  if (u.protocol === "http:") u.protocol = "ws:";
  if (u.protocol === "https:") u.protocol = "wss:";
  return u.toString();
}

function errorText(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    return typeof parsed.error === "string" ? parsed.error : undefined;
  } catch {
    return body.trim().slice(0, 200) || undefined;
  }
}
