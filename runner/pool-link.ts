/**
 * The runner's socket to the RunnerPool: it says hello with the runner's info and its slots now,
 * passes on the pool's `join` and `welcome`, and tells the pool the runner's status: at most every
 * 100 ms and only when it changed, and with a device report when the sampler has one. A refusal
 * for good (the credential, the protocol, the endpoint) is handed to the Runner, which fails; a
 * revocation (close 4403, or HTTP 403 to the pool socket, which only a revoked device gets) first
 * sets the credential aside. The reconnecting and the heartbeat are the Link's (link.ts).
 */
import { PROTOCOL_VERSION, type RunnerInfo } from "../core/protocol/messages.js";
import type { DeviceSample } from "./device.js";
import type { RunnerIdentity } from "./identity.js";
import { Link } from "./link.js";
import type { Logger } from "./log.js";

/** What the pool is told: idle slots, slots offered, the runs the runner is in. */
interface PoolStatus {
  free: number;
  slots: number;
  runs: string[];
}

/** What the pool socket needs from the Runner. */
export interface PoolHost {
  status(): PoolStatus;
  /** False once draining or failed: no status goes out then. */
  accepting(): boolean;
  /** The socket opened (after each reconnect too), the hello sent. */
  opened(): void;
  join(run: string, priority: number): void;
  /** The pool answered the hello: its heartbeat period, and the most slots it counts for the runner. */
  welcome(heartbeatMs: number, maxSlots: number | undefined): void;
  /** The coordinator refused the runner for good; `reason` says why. */
  refused(reason: string): void;
}

export interface PoolLinkOptions {
  coordinator: URL;
  identity: RunnerIdentity;
  info: RunnerInfo;
  log: Logger;
}

export class PoolLink {
  private readonly link: Link;
  private timer: NodeJS.Timeout | undefined;
  /** The status the pool last got, as JSON: an unchanged one is not sent again. */
  private last = "";

  constructor(
    options: PoolLinkOptions,
    private readonly host: PoolHost,
  ) {
    const { coordinator, identity, info, log } = options;
    this.link = new Link({
      url: new URL("/api/runners/connect", coordinator),
      auth: identity,
      label: "pool",
      log,
      onOpen: () => {
        const runner = { ...info, id: identity.runnerId(), slots: host.status().slots };
        this.link.send({ type: "hello", protocol: PROTOCOL_VERSION, runner, want: 0, holding: [] });
        this.last = "";
        host.opened();
        // A draining runner that reconnects says at once it has no idle slots (the hello's count is all).
        if (host.accepting()) this.report();
        else this.quiet();
      },
      onMessage: (m) => {
        if (m.type === "join") host.join(m.run, m.priority);
        else if (m.type === "welcome") host.welcome(m.heartbeatMs, m.slots);
        else if (m.type === "error") log.info(`pool: coordinator says: ${m.message}`);
      },
      onEnd: (reason, end) => {
        log.info(`pool: ${reason}`);
        if (end === "refused") host.refused(reason);
        if (end === "revoked" || end === "forbidden") host.refused(identity.revoked(reason));
      },
    });
  }

  start(): void {
    this.link.start();
  }

  /** Tells the pool the runner's status within 100 ms, unless it is what the pool already has. */
  report(): void {
    if (this.timer || !this.host.accepting()) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const status = { type: "status" as const, ...this.host.status() };
      const key = JSON.stringify(status);
      if (key !== this.last && this.link.send(status)) this.last = key;
    }, 100);
  }

  /** Sends the status with a device report now; false when the socket could not take it. */
  reportDevice(device: DeviceSample): boolean {
    const status = { type: "status" as const, ...this.host.status() };
    if (!this.link.send({ ...status, device })) return false;
    this.last = JSON.stringify(status);
    return true;
  }

  /**
   * Sends no more status: the runner is draining or failed. The last one goes now, with no idle
   * slots, so the pool does not take the runner for idle beside work it will not take.
   */
  quiet(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const status = { type: "status" as const, ...this.host.status() };
    const key = JSON.stringify(status);
    if (key !== this.last && this.link.send(status)) this.last = key;
  }

  close(reason: string): void {
    this.quiet();
    this.link.close(reason);
  }
}
