/**
 * One outbound WebSocket to the coordinator that survives the coordinator going away: it
 * reconnects with capped exponential back-off and jitter, logging one line per attempt, until
 * it is closed, the coordinator ends it for good (run finished, replaced), or the coordinator
 * refuses the device. A socket closed for its rate limit (CLOSE.rateLimited) reconnects no sooner
 * than a floor of a few seconds, and later each time it is limited again soon after. Every upgrade
 * carries the device's credential; one answered 401 (the coordinator does not know it) is renewed
 * once through `auth` and the socket opened again, and a revocation (HTTP 403, close 4403) is
 * final. Frames are decoded and validated here, and heartbeats sent: a "ping" three times per
 * heartbeat period the coordinator announces in its welcome.
 */
import WebSocket from "ws";
import { decodeCoordinatorMessage, encode } from "../core/protocol/codec.js";
import {
  CLOSE,
  HEARTBEAT,
  MAX_FRAME_BYTES,
  type CoordinatorMessage,
  type RunnerMessageInput,
} from "../core/protocol/messages.js";
import { errorText } from "./answers.js";
import { retryDelay, seconds, type Backoff } from "./backoff.js";
import { DEFAULTS } from "./config.js";
import type { Logger } from "./log.js";

/** The device's credential, as a link needs it (auth.ts has the real one). */
export interface LinkAuth {
  /** The Bearer credential to open sockets with now. */
  credential(): string;
  /**
   * The coordinator answered 401 to `stale`: resolves once a new credential is in place
   * (undefined), or with why there is none. Never rejects.
   */
  renew(stale: string): Promise<string | undefined>;
}

/**
 * How a link ended: `closed` by the runner; `final` when the coordinator ended it with nothing
 * wrong (run finished, socket replaced); `refused` when the coordinator will not take the runner
 * (protocol, endpoint, a credential it does not know and that could not be renewed); `forbidden`
 * for HTTP 403 at the upgrade (the credential refused: on the pool socket, a revoked device);
 * `revoked` for close 4403, the operator revoking the device.
 */
export type LinkEnd = "closed" | "final" | "refused" | "forbidden" | "revoked";

export interface LinkOptions {
  url: URL;
  auth: LinkAuth;
  /** Names the link in log lines, e.g. "pool" or "run 3fa9…". */
  label: string;
  log: Logger;
  onOpen: () => void;
  onMessage: (message: CoordinatorMessage) => void;
  /** The link ended for good; `reason` says why. */
  onEnd: (reason: string, end: LinkEnd) => void;
  backoff?: Backoff;
  random?: () => number;
}

/** Close codes after which reconnecting would be wrong, and how each ends the link. */
const FINAL_CLOSES = new Map<number, LinkEnd>([
  [CLOSE.finished, "final"],
  [CLOSE.replaced, "final"],
  [CLOSE.protocol, "refused"],
  [CLOSE.revoked, "revoked"],
]);

export class Link {
  private ws: WebSocket | undefined;
  private timer: NodeJS.Timeout | undefined;
  private pinger: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Rate-limit closes in a row, each soon after the socket opened (see `limited`). */
  private limits = 0;
  private openedAt = 0;
  private ended = false;
  /** A 401 has been answered by renewing the credential, and no socket has opened since. */
  private renewed = false;
  /** When the socket last heard anything (a frame, a pong): a link silent for two heartbeats is dead. */
  private heard = 0;

  constructor(private readonly options: LinkOptions) {}

  start(): void {
    this.connect();
  }

  get open(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Sends a frame if the socket is open; false when it is not (the frame is dropped). */
  send(message: RunnerMessageInput): boolean {
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
    this.options.onEnd(reason, "closed");
  }

  private connect(): void {
    const { url, auth, log, label } = this.options;
    const credential = auth.credential();
    const ws = new WebSocket(toWs(url), {
      headers: { Authorization: `Bearer ${credential}` },
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
      this.renewed = false;
      this.openedAt = Date.now();
      this.heard = this.openedAt;
      this.options.onOpen();
    });
    ws.on("message", (data, isBinary) => {
      this.heard = Date.now();
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
        if (res.statusCode === 401) return this.unauthorized(credential, refusal);
        if (res.statusCode === 403)
          return this.end(`the coordinator refused this device's credential (${refusal})`, "forbidden");
        if (res.statusCode === 404)
          return this.end(`the coordinator does not know this endpoint (${refusal})`, "refused");
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
      const final = FINAL_CLOSES.get(code);
      if (final === "revoked")
        return this.end(`close ${code}${reason.length > 0 ? `: ${reason.toString()}` : ""}`, final);
      if (final) return this.end(reason.toString() || `closed with code ${code}`, final);
      if (code === CLOSE.rateLimited) return this.limited(reason.toString() || "rate limited");
      if (refusal === undefined || !refusal.startsWith("HTTP"))
        this.retry(refusal ?? `connection closed (code ${code})`);
    });
  }

  /**
   * The coordinator does not know the credential (say its state was reset): renew it once and
   * open again at once; a renewed one refused too, or none to be had, ends the link.
   */
  private unauthorized(stale: string, refusal: string): void {
    if (this.renewed)
      return this.end(`the coordinator refused the device's new credential too (${refusal})`, "refused");
    this.renewed = true;
    this.options.auth.renew(stale).then(
      (why) => {
        if (this.ended) return;
        if (why === undefined) this.connect();
        else this.end(`${why} (${refusal})`, "refused");
      },
      (e: Error) => this.end(`could not renew the device's credential: ${e.message} (${refusal})`, "refused"),
    );
  }

  /**
   * Pings three times a heartbeat period; every ping is answered (a pong, by the coordinator's
   * runtime), so a link that has heard nothing for two periods is half-open (a blackhole, a
   * sleep, a NAT that forgot it): it is dropped and opened again, as after a close.
   */
  private heartbeat(ws: WebSocket, periodMs: number): void {
    clearInterval(this.pinger);
    this.pinger = setInterval(
      () => {
        if (ws.readyState !== WebSocket.OPEN) return;
        const silentMs = Date.now() - this.heard;
        if (silentMs > 2 * periodMs) {
          const { log, label } = this.options;
          log.info(`${label}: heard nothing for ${(silentMs / 1000).toFixed(1)} s (two heartbeats): reconnecting`);
          return void ws.terminate();
        }
        ws.send(HEARTBEAT.ping);
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
    const backoff = this.options.backoff ?? DEFAULTS.reconnect;
    // A first limit waits as a fourth retry would (a ceiling of 4 s with the defaults; never less
    // than limitedMs), and each next one twice as long.
    const steps = limited ? this.limits + 2 : this.failures;
    const delay = retryDelay(steps, backoff, this.options.random ?? Math.random, limited ? backoff.limitedMs : 0);
    if (!limited) this.failures++;
    const { label, url, log } = this.options;
    const wait = seconds(delay);
    if (limited) log.info(`${label}: rate limited by the coordinator ${url.origin} (${why}); reconnecting in ${wait}`);
    else log.info(`${label}: coordinator ${url.origin} not reachable (${why}); retry ${this.failures} in ${wait}`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (!this.ended) this.connect();
    }, delay);
  }

  private end(reason: string, end: LinkEnd): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    this.ws?.terminate();
    this.options.onEnd(reason, end);
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
