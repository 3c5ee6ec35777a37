/**
 * Stderr of a running task, batched for the trip from its thread to the runner's main thread
 * (thread.ts): one message at most every `everyMs` or per `maxBytes`, never one per write. The
 * task's WASM runs on the thread's only stack, so no timer fires while it runs: a write (or a
 * clock read, `poll`) that finds the last post `everyMs` old posts at once; what a task writes
 * just before it computes without a word waits for its next call or its end (`flush`).
 */

export interface BatchOptions {
  everyMs: number;
  maxBytes: number;
  now?: () => number;
}

export class StderrBatches {
  private readonly parts: Uint8Array[] = [];
  private bytes = 0;
  private postedAt = -Infinity;
  private readonly now: () => number;

  constructor(
    private readonly post: (bytes: Uint8Array) => void,
    private readonly options: BatchOptions,
  ) {
    this.now = options.now ?? Date.now;
  }

  /** Takes a copy of `bytes`; posts what is due. */
  add(bytes: Uint8Array): void {
    const { maxBytes } = this.options;
    for (let at = 0; at < bytes.length;) {
      const take = Math.min(bytes.length - at, maxBytes - this.bytes);
      this.parts.push(bytes.slice(at, at + take));
      this.bytes += take;
      at += take;
      if (this.bytes >= maxBytes) this.flush();
    }
    this.poll();
  }

  /** Posts what waits if the last post is `everyMs` old. */
  poll(): void {
    if (this.bytes > 0 && this.now() - this.postedAt >= this.options.everyMs) this.flush();
  }

  /** Posts what waits, in one buffer of its own (transferable). */
  flush(): void {
    if (this.bytes === 0) return;
    const out = new Uint8Array(this.bytes);
    let at = 0;
    for (const part of this.parts.splice(0)) {
      out.set(part, at);
      at += part.length;
    }
    this.bytes = 0;
    this.postedAt = this.now();
    this.post(out);
  }
}
