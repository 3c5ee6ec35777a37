/**
 * A lying test runner: a device that speaks the real runner protocol (core/protocol, over `ws`)
 * and misbehaves in one chosen way, for end-to-end tests of what one device can do to the others
 * (test/e2e/hostile-devices.test.ts, and later issues' tests).
 *
 * Like a real runner it enrolls (the development secret, unless given a credential), keeps a pool
 * socket (hello, a status, pings within the welcome's heartbeat), and follows `join` frames by
 * opening a run socket that says hello with `want` = its slots. What it then does is its mode:
 *
 * - `ghost`: takes tasks and never answers. With `dropAfterMs` it drops the run socket that long
 *   after tasks arrive and comes back with a fresh hello holding nothing (its attempts are lost
 *   at once); without, it keeps the socket open, pinging, until the leases expire. With `reask`
 *   it answers each tasks frame with a `want` of all its slots, as if it held nothing.
 * - `forger`: answers every task at once as succeeded with `output` (inline, base64).
 * - `claimer`: claims `claim` slots (default 4096) in hello and status frames; it joins no run
 *   unless `joinRuns` is set, and then hands back every task it gets (`reject`).
 * - `stray`: on each run socket sends `frames` results frames (default 100), each about an attempt
 *   it was never given, and takes no tasks.
 *
 * It records what it saw (`taken`, `closes`, `errors`, `joins`) and `stop()` closes every socket.
 * It never exits the process and never throws from a socket handler.
 */
import WebSocket from "ws";
import { decodeCoordinatorMessage, encode } from "../../core/protocol/codec";
import {
  CLOSE,
  HEARTBEAT,
  PROTOCOL_VERSION,
  type Assignment,
  type CoordinatorMessage,
  type RunnerInfo,
  type RunnerMessageInput,
} from "../../core/protocol/messages";
import { enrollDevice } from "../../dev/local";

export type LyingMode =
  | { mode: "ghost"; dropAfterMs?: number; reask?: boolean }
  | { mode: "forger"; output: string | Uint8Array }
  | { mode: "claimer"; claim?: number }
  | { mode: "stray"; frames?: number };

export interface LyingRunnerOptions {
  coordinator: URL;
  behaviour: LyingMode;
  /** The device to enroll with the development secret (default a fresh `lying-<mode>-…` id). */
  device?: string;
  /** A credential (`<device>.<secret>`) to use instead of enrolling. */
  credential?: string;
  /** Which runner of its device it is, `<device>` or `<device>.<k>` (default the device id). */
  runnerId?: string;
  name?: string;
  /** Slots it says it has and wants on each run socket (default 2; a claimer's `claim` instead). */
  slots?: number;
  /** Whether it opens a run socket on `join` (default true, false for a claimer). */
  joinRuns?: boolean;
}

/** An attempt it was given. */
export interface TakenTask {
  run: string;
  task: string;
  attempt: number;
  at: number;
}

/** A socket that ended, as the coordinator closed it (or the lying runner did). */
export interface SocketEnd {
  socket: "pool" | "run";
  run?: string;
  code: number;
  reason: string;
  at: number;
}

/** Coordinator error frames, and sockets refused at the upgrade (`status` the HTTP status). */
export interface SocketError {
  socket: "pool" | "run";
  run?: string;
  message: string;
  fatal: boolean;
  status?: number;
}

/** Close codes after which a real runner does not reopen a run socket. */
const FINAL_CLOSES: readonly number[] = [CLOSE.finished, CLOSE.replaced, CLOSE.protocol, CLOSE.revoked];

/** The status frames' slot fields accept at most this (the wire's `want`). */
const WIRE_MAX = 4096;

let made = 0;

export class LyingRunner {
  readonly taken: TakenTask[] = [];
  readonly closes: SocketEnd[] = [];
  readonly errors: SocketError[] = [];
  /** Runs it was told to join, in order (repeats included). */
  readonly joins: string[] = [];
  /** Results frames it sent about attempts it does not hold (stray mode). */
  straySent = 0;
  /** Tasks it answered (forger) or handed back (claimer). */
  answered = 0;
  readonly id: string;
  readonly device: string;
  private pool: Channel | undefined;
  private readonly runs = new Map<string, Channel>();
  /** Runs that ended for it (finished, or refused for good): never reopened. */
  private readonly done = new Set<string>();
  private stopped = false;
  /** What its sockets report. */
  private readonly record: Recorder = {
    ended: (end) => this.closes.push(end),
    failed: (error) => this.errors.push(error),
  };

  private constructor(
    private readonly options: LyingRunnerOptions,
    /** Its device's credential: another lying runner of the same device (`runnerId`) may use it. */
    readonly credential: string,
  ) {
    this.device = credential.slice(0, credential.indexOf("."));
    this.id = options.runnerId ?? this.device;
  }

  /** Enrolls (unless given a credential), opens the pool socket and resolves once welcomed. */
  static async start(options: LyingRunnerOptions): Promise<LyingRunner> {
    const device = options.device ?? `lying-${options.behaviour.mode}-${process.pid}-${++made}`;
    const credential = options.credential ?? (await enrollDevice(options.coordinator, device));
    const runner = new LyingRunner(options, credential);
    await runner.openPool();
    return runner;
  }

  get mode(): LyingMode["mode"] {
    return this.options.behaviour.mode;
  }

  /** The slots it claims: a claimer's `claim`, otherwise `slots`. */
  get slots(): number {
    const b = this.options.behaviour;
    return b.mode === "claimer" ? (b.claim ?? WIRE_MAX) : (this.options.slots ?? 2);
  }

  /** Its slots as a frame's `want` or status can say them (at most 4096). */
  private get wireSlots(): number {
    return Math.min(this.slots, WIRE_MAX);
  }

  /** The device report it sends: plausible numbers, its (claimed) slots. */
  info(): RunnerInfo {
    return {
      id: this.id,
      name: this.options.name ?? `lying-${this.mode}`,
      platform: "linux",
      arch: "x64",
      cores: 8,
      memory: 2 ** 33,
      freeMemory: 2 ** 32,
      slots: this.slots,
      labels: [],
      version: "0.1.0",
      node: process.versions.node,
    };
  }

  /** Whether its pool socket is open. */
  get connected(): boolean {
    return this.pool?.open ?? false;
  }

  /** Resolves once `check` holds (polled every 20 ms); rejects after `timeoutMs`, saying what it waited for. */
  async until(check: (runner: this) => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!check(this)) {
      if (Date.now() > deadline)
        throw new Error(`lying runner ${this.id} (${this.mode}): timed out waiting for ${what}; ${this.summary()}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** One line of what it saw, for failure messages. */
  summary(): string {
    const closes = this.closes.map((c) => `${c.socket} ${c.code}`).join(", ");
    return `taken ${this.taken.length}, joins ${this.joins.length}, closes [${closes}], errors ${this.errors.length}`;
  }

  /** Closes every socket (code 1000) and waits for them to end; it opens none after this. */
  async stop(): Promise<void> {
    this.stopped = true;
    const channels = [...(this.pool ? [this.pool] : []), ...this.runs.values()];
    await Promise.all(channels.map((c) => c.close(1000, "lying runner stopped")));
  }

  private async openPool(): Promise<void> {
    const url = new URL("/api/runners/connect", this.options.coordinator);
    const pool = new Channel(url, this.credential, "pool", undefined, this.record);
    this.pool = pool;
    pool.onMessage = (m) => {
      if (m.type === "welcome") {
        pool.beat(m.heartbeatMs);
        this.status();
      } else if (m.type === "join") {
        this.joins.push(m.run);
        if (this.options.joinRuns ?? this.mode !== "claimer") this.join(m.run);
      }
    };
    await pool.opened;
    pool.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: this.info(), want: 0, holding: [] });
    await pool.welcomed;
  }

  /** Tells the pool: all slots idle (a lie for ghosts), the runs it is in. */
  private status(): void {
    const claimed = this.wireSlots;
    const runs = [...this.runs.keys()].filter((r) => !this.done.has(r));
    this.pool?.send({ type: "status", free: claimed, slots: claimed, runs });
  }

  private join(run: string): void {
    if (this.stopped || this.done.has(run) || this.runs.get(run)?.alive) return;
    const url = new URL("/api/runners/connect", this.options.coordinator);
    url.searchParams.set("run", run);
    const channel = new Channel(url, this.credential, "run", run, this.record);
    this.runs.set(run, channel);
    let drop: NodeJS.Timeout | undefined;
    channel.onMessage = (m) => this.onRunMessage(channel, m, () => (drop ??= this.scheduleDrop(channel)));
    channel.onEnd = (code) => {
      clearTimeout(drop);
      if (FINAL_CLOSES.includes(code)) this.done.add(run);
      this.status();
    };
    void channel.opened.then(
      () => {
        const want = this.mode === "stray" ? 0 : this.wireSlots;
        channel.send({ type: "hello", protocol: PROTOCOL_VERSION, runner: this.info(), want, holding: [] });
        this.status();
      },
      () => this.done.add(run),
    );
  }

  private onRunMessage(channel: Channel, m: CoordinatorMessage, tookTasks: () => void): void {
    const run = channel.run!;
    const behaviour = this.options.behaviour;
    if (m.type === "welcome") {
      channel.beat(m.heartbeatMs);
      if (behaviour.mode === "stray") this.sendStrays(channel, behaviour.frames ?? 100);
    } else if (m.type === "finished") {
      this.done.add(run);
    } else if (m.type === "tasks") {
      const at = Date.now();
      for (const t of m.tasks) this.taken.push({ run, task: t.task, attempt: t.attempt, at });
      channel.received += m.tasks.length;
      if (m.tasks.length === 0) return;
      if (behaviour.mode === "ghost") {
        tookTasks();
        if (behaviour.reask) channel.send({ type: "want", want: this.wireSlots, received: channel.received });
      } else if (behaviour.mode === "forger") this.forge(channel, m.tasks, behaviour.output);
      else if (behaviour.mode === "claimer") {
        channel.send({ type: "reject", tasks: m.tasks.map(({ task, attempt }) => ({ task, attempt })) });
        this.answered += m.tasks.length;
      }
    }
  }

  private forge(channel: Channel, tasks: Assignment[], output: string | Uint8Array): void {
    const b64 = Buffer.from(typeof output === "string" ? new TextEncoder().encode(output) : output).toString("base64");
    const results = tasks.map((t) => ({
      task: t.task,
      attempt: t.attempt,
      ok: true,
      output: b64,
      stderr: "",
      durationMs: 1,
    }));
    channel.send({ type: "results", results, want: this.wireSlots, received: channel.received });
    this.answered += tasks.length;
  }

  private sendStrays(channel: Channel, frames: number): void {
    for (let i = 0; i < frames && channel.open; i++) {
      const result = { task: `stray-${i}`, attempt: 1000 + i, ok: true, output: "", stderr: "", durationMs: 1 };
      channel.send({ type: "results", results: [result], want: 0, received: channel.received });
      this.straySent++;
    }
  }

  /** A ghost with `dropAfterMs` vanishes from the run that long after it took tasks, then comes back. */
  private scheduleDrop(channel: Channel): NodeJS.Timeout | undefined {
    const b = this.options.behaviour;
    if (b.mode !== "ghost" || b.dropAfterMs === undefined) return undefined;
    return setTimeout(() => {
      void channel.close(1000, "ghost vanishes").then(() => {
        const run = channel.run!;
        if (!this.stopped && !this.done.has(run)) this.join(run);
      });
    }, b.dropAfterMs);
  }
}

/** Where a channel reports its end and the errors it met. */
interface Recorder {
  ended(end: SocketEnd): void;
  failed(error: SocketError): void;
}

/** One WebSocket of the lying runner: typed frames out, decoded frames in, pings, its end recorded. */
class Channel {
  readonly ws: WebSocket;
  readonly opened: Promise<void>;
  readonly welcomed: Promise<void>;
  readonly ended: Promise<void>;
  /** Tasks received on this socket (the `received` of want and results frames). */
  received = 0;
  onMessage: (m: CoordinatorMessage) => void = () => {};
  onEnd: (code: number) => void = () => {};
  private ping: NodeJS.Timeout | undefined;

  constructor(
    url: URL,
    credential: string,
    readonly kind: "pool" | "run",
    readonly run: string | undefined,
    owner: Recorder,
  ) {
    const wsUrl = new URL(url);
    wsUrl.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    this.ws = new WebSocket(wsUrl, { headers: { Authorization: `Bearer ${credential}` }, perMessageDeflate: false });
    const where = { socket: kind, ...(run ? { run } : {}) };
    let welcome: () => void = () => {};
    this.welcomed = new Promise((resolve) => (welcome = resolve));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once("open", () => resolve());
      this.ws.once("error", reject);
    });
    this.opened.catch(() => {}); // a refused upgrade is recorded below; callers may not wait on it
    this.ws.on("unexpected-response", (_req, res) => {
      owner.failed({ ...where, message: `HTTP ${res.statusCode} at the upgrade`, fatal: true, status: res.statusCode });
      res.resume();
      this.ws.terminate();
    });
    this.ws.on("error", () => {}); // the close event follows and is what is recorded
    this.ws.on("message", (data, binary) => {
      const text = (Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer)).toString();
      if (!binary && text === HEARTBEAT.pong) return;
      const decoded = decodeCoordinatorMessage(text);
      if (!decoded.ok) return owner.failed({ ...where, message: `undecodable frame: ${decoded.error}`, fatal: false });
      const m = decoded.message;
      if (m.type === "welcome") welcome();
      if (m.type === "error") owner.failed({ ...where, message: m.message, fatal: m.fatal });
      try {
        this.onMessage(m);
      } catch (e) {
        owner.failed({ ...where, message: `lying runner: ${(e as Error).message}`, fatal: false });
      }
    });
    this.ended = new Promise((resolve) => {
      this.ws.once("close", (code, reason) => {
        clearInterval(this.ping);
        owner.ended({ ...where, code, reason: reason.toString(), at: Date.now() });
        this.onEnd(code);
        resolve();
      });
    });
  }

  get open(): boolean {
    return this.ws.readyState === WebSocket.OPEN;
  }

  /** Open, or still opening. */
  get alive(): boolean {
    return this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING;
  }

  /** Pings well within the coordinator's heartbeat limit. */
  beat(heartbeatMs: number): void {
    clearInterval(this.ping);
    this.ping = setInterval(() => this.open && this.ws.send(HEARTBEAT.ping), Math.max(100, heartbeatMs / 4));
  }

  send(message: RunnerMessageInput): void {
    if (this.open) this.ws.send(encode(message));
  }

  /** Closes the socket and resolves once it ended (terminated if the handshake takes over 2 s). */
  async close(code: number, reason: string): Promise<void> {
    clearInterval(this.ping);
    if (this.ws.readyState === WebSocket.CLOSED) return;
    if (this.ws.readyState === WebSocket.CONNECTING) this.ws.terminate();
    else this.ws.close(code, reason);
    const timer = setTimeout(() => this.ws.terminate(), 2000);
    await this.ended;
    clearTimeout(timer);
  }
}
