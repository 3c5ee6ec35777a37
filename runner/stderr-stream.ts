/**
 * The stderr of one attempt on its way to the coordinator while the task runs, as `log` frames
 * (core/protocol/messages.ts). The task thread batches what the task writes (executor/
 * stderr-batches.ts); here it becomes UTF-8 text (a character split between batches waits for
 * its end), is cut at LOG_LIMITS.attemptBytes, and goes out in chunks of at most
 * LOG_LIMITS.chunkBytes within the run socket's LogBudget, so a chatty task never gets its socket
 * closed for its rate (docs/limits.md). A chunk that cannot go (no budget, the socket down) cuts
 * the log there: nothing more is sent, and the attempt's last frame says how many bytes were
 * dropped. The first 200 ms are held: an attempt that ends by then with a few KiB of stderr sends
 * no frame at all, the result's stderr tail has it whole. The Runner makes one per attempt
 * (runner.ts), attempt.ts feeds and ends it.
 */
import { LOG_LIMITS, type RunnerMessage } from "../core/protocol/messages.js";

export type LogFrame = Extract<RunnerMessage, { type: "log" }>;

/** Bytes of a frame beyond its chunk (its JSON and names), as the budget counts them. */
const FRAME_OVERHEAD = 256;

/**
 * What log frames may take of one run socket: a quarter of the coordinator's default limits
 * (8 MiB/s with a burst of 32 MiB, 2000 frames/s with a burst of 4000), so results and wants
 * always have room. Token buckets, full at first.
 */
export class LogBudget {
  private bytes: number;
  private frames: number;
  private at: number;

  constructor(
    private readonly limits = { bytesPerSec: 2 << 20, byteBurst: 8 << 20, framesPerSec: 500, frameBurst: 1000 },
    private readonly now: () => number = () => performance.now(),
  ) {
    this.bytes = limits.byteBurst;
    this.frames = limits.frameBurst;
    this.at = now();
  }

  /** Takes one frame of `bytes` if both buckets have it. */
  take(bytes: number): boolean {
    const now = this.now();
    const s = (now - this.at) / 1000;
    this.at = now;
    const { bytesPerSec, byteBurst, framesPerSec, frameBurst } = this.limits;
    this.bytes = Math.min(byteBurst, this.bytes + s * bytesPerSec);
    this.frames = Math.min(frameBurst, this.frames + s * framesPerSec);
    if (this.bytes < bytes || this.frames < 1) return false;
    this.bytes -= bytes;
    this.frames -= 1;
    return true;
  }
}

export interface StreamOptions {
  /** How long stderr is held at first (default 200 ms). */
  holdMs?: number;
  /** Stderr an attempt that ends within `holdMs` keeps to its result's tail (default 4096 bytes). */
  tailBytes?: number;
}

/** One attempt's stderr stream; `push` its batches, then `end` (or `discard`) it once. */
export class StderrStream {
  private readonly decoder = new TextDecoder();
  private pending = "";
  /** Bytes of text sent: the next chunk's offset. */
  private sent = 0;
  /** Bytes not sent (cut). */
  private dropped = 0;
  private cut = false;
  private holding = true;
  private readonly timer: NodeJS.Timeout;
  private readonly tailBytes: number;

  /** The attempt, as its frames name it (only its task and number: an assignment has more). */
  private readonly ref: { task: string; attempt: number };

  constructor(
    { task, attempt }: { task: string; attempt: number },
    private readonly send: (frame: LogFrame) => boolean,
    private readonly budget: LogBudget,
    { holdMs = 200, tailBytes = 4096 }: StreamOptions = {},
  ) {
    this.ref = { task, attempt };
    this.tailBytes = tailBytes;
    this.timer = setTimeout(() => {
      this.holding = false;
      this.flush();
    }, holdMs);
    this.timer.unref();
  }

  /** A batch of stderr from the task's thread. */
  push(bytes: Uint8Array): void {
    if (this.cut) {
      this.dropped += bytes.length;
      return;
    }
    this.pending += this.decoder.decode(bytes, { stream: true });
    if (!this.holding) this.flush();
  }

  /**
   * The attempt ended and its result is about to go: what waits goes first, then, when some of
   * its stderr was not sent (`threadDropped`: what the thread cut), a last frame saying so.
   */
  end(threadDropped = 0): void {
    clearTimeout(this.timer);
    if (!this.cut) this.pending += this.decoder.decode();
    if (this.holding && threadDropped === 0 && Buffer.byteLength(this.pending) <= this.tailBytes) {
      this.pending = "";
      return;
    }
    this.holding = false;
    this.flush();
    const dropped = this.dropped + threadDropped;
    if (dropped > 0) this.send({ type: "log", ...this.ref, offset: this.sent, chunk: "", dropped });
  }

  /** The attempt was dropped (cancelled, handed back): nothing more of it is sent. */
  discard(): void {
    clearTimeout(this.timer);
    this.pending = "";
    this.cut = true;
  }

  private flush(): void {
    while (this.pending.length > 0 && !this.cut) {
      let size = Math.min(this.pending.length, LOG_LIMITS.chunkBytes);
      // A surrogate pair stays in one chunk.
      if (size < this.pending.length && /[\ud800-\udbff]/.test(this.pending[size - 1]!)) size--;
      const chunk = this.pending.slice(0, size);
      this.pending = this.pending.slice(size);
      const bytes = Buffer.byteLength(chunk);
      const fits = this.sent + bytes <= LOG_LIMITS.attemptBytes;
      if (
        fits &&
        this.budget.take(bytes + FRAME_OVERHEAD) &&
        this.send({ type: "log", ...this.ref, offset: this.sent, chunk })
      ) {
        this.sent += bytes;
        continue;
      }
      this.cut = true;
      this.dropped += bytes + Buffer.byteLength(this.pending);
      this.pending = "";
    }
  }
}
