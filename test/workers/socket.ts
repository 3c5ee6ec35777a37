// WebSocket clients for workers tests: a queue of decoded JSON frames, read by type.
import { SELF } from "cloudflare:test";
import { expect } from "vitest";
import type { CoordinatorMessage, RunnerMessageInput } from "../../core/protocol/messages";
import type { WatchMessage } from "../../core/protocol/watch";

export const base = "http://coordinator.test";
export const API = { Authorization: "Bearer test-api-token" };
/** The development secret: it only enrolls devices (`POST /api/runners/enroll`). */
export const RUNNER = { Authorization: "Bearer test-runner-token" };

const credentials = new Map<string, Promise<string>>();

/**
 * The credential of device `device`, enrolled with the development secret on first use (trust on
 * first use: the id is claimed then). Later calls get the kept one (callers at once share one
 * enrollment); one kept from a storage since reset is enrolled again.
 */
function credentialFor(device: string): Promise<string> {
  const before = credentials.get(device);
  const made = (async () => {
    // One at a time per device: a call waits for the one before it, whose credential it may keep.
    const kept = await before?.catch(() => undefined);
    const res = await SELF.fetch(`${base}/api/runners/enroll`, {
      method: "POST",
      headers: RUNNER,
      body: JSON.stringify({ name: device, device }),
    });
    if (res.status === 200) return (await res.json<{ credential: string }>()).credential;
    if (res.status === 403 && kept) return kept;
    throw new Error(`enrolling ${device}: HTTP ${res.status} ${await res.text()}`);
  })();
  credentials.set(device, made);
  return made;
}

/** Headers of a request made as device `device`. */
export async function asDevice(device: string): Promise<{ Authorization: string }> {
  return { Authorization: `Bearer ${await credentialFor(device)}` };
}

/** A scripted runner's device report: `slots` slots and as many cores, named `name`. */
export const runnerInfo = (id: string, slots = 2, name = id) => ({
  id,
  name,
  platform: "linux",
  arch: "x64",
  cores: slots,
  memory: 2 ** 30,
  freeMemory: 2 ** 29,
  slots,
  labels: [],
  version: "test",
});

/** A WebSocket client with a queue of decoded frames of type M. */
class Socket<M extends { type: string }, Out = never> {
  private readonly frames: M[] = [];
  private waiters: (() => void)[] = [];
  closed: { code: number; reason: string } | undefined;
  /** Every frame received, in order. */
  readonly seen: M[] = [];

  constructor(readonly ws: WebSocket) {
    ws.accept();
    ws.addEventListener("message", (e) => {
      if (e.data === "pong") return; // the answer to a heartbeat, not a frame
      const frame = JSON.parse(e.data as string) as M;
      this.frames.push(frame);
      this.seen.push(frame);
      this.wake();
    });
    ws.addEventListener("close", (e) => {
      this.closed = { code: e.code, reason: e.reason };
      this.wake();
    });
  }

  private wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  send(message: Out | string) {
    this.ws.send(typeof message === "string" ? message : JSON.stringify(message));
  }

  /** Frames that `next` passes over whatever their type (still in `seen`). */
  protected only(frame: M): boolean {
    void frame;
    return false;
  }

  /** The next frame of `type` (or of any of `types`), skipping others. */
  async next<T extends M["type"]>(...types: T[]): Promise<Extract<M, { type: T }>> {
    for (;;) {
      const i = this.frames.findIndex((f) => types.includes(f.type as T) && !this.only(f));
      if (i >= 0) return this.frames.splice(i, 1)[0] as Extract<M, { type: T }>;
      if (this.closed)
        throw new Error(
          `socket closed (${this.closed.code} ${this.closed.reason}) while waiting for ${types.join(" or ")}`,
        );
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Resolves when the socket has closed. */
  async ended(): Promise<{ code: number; reason: string }> {
    while (!this.closed) await new Promise<void>((r) => this.waiters.push(r));
    return this.closed;
  }
}

/** A scripted runner's socket; `next("tasks")` passes over frames of no tasks, which only tell the backlog. */
export class RunnerSocket extends Socket<CoordinatorMessage, RunnerMessageInput> {
  protected override only(frame: CoordinatorMessage): boolean {
    return frame.type === "tasks" && frame.tasks.length === 0;
  }

  /** Opens a runner socket as device `device` (the device of runner ids `device` and `device.<k>`). */
  static async open(path: string, device: string): Promise<RunnerSocket> {
    const headers = { ...(await asDevice(device.split(".")[0]!)), Upgrade: "websocket" };
    const res = await SELF.fetch(`${base}${path}`, { headers });
    expect(res.status).toBe(101);
    return new RunnerSocket(res.webSocket!);
  }
}

/** A watcher of a run (`GET /api/dags/:id/watch`), authenticated as a browser would: `?token=`. */
export class WatchSocket extends Socket<WatchMessage> {
  static async open(run: string): Promise<WatchSocket> {
    const res = await SELF.fetch(`${base}/api/dags/${run}/watch?token=test-api-token`, {
      headers: { Upgrade: "websocket" },
    });
    expect(res.status).toBe(101);
    return new WatchSocket(res.webSocket!);
  }
}
