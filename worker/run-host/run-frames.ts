/**
 * What a runner's frames on a run socket mean to the run: `hello` attaches the runner, `want`,
 * `results` and `reject` become events of the state machine, and a `status` frame (meant for the
 * pool socket) gets an error frame back. A result whose output blob never reached blob storage
 * becomes a retryable failure here, before the machine sees it. The DagRun decodes and meters the
 * frames (durable/sockets.ts) and hands them here.
 */
import type { CoordinatorMessage, RunnerMessage, TaskResult } from "../../core/protocol/messages.js";
import type { RunEvent } from "../run/machine.js";

type Hello = Extract<RunnerMessage, { type: "hello" }>;
/** `log` frames are no event of the machine: the DagRun hands them to its logs (durable/run-logs.ts). */
type Log = Extract<RunnerMessage, { type: "log" }>;

/**
 * The event of a runner's hello on a run socket, with until when its device is cooled down (null:
 * it is not). Its want is taken as said: the machine bounds what it holds (`maxHeld`).
 */
export function attachEvent({ runner, want, holding }: Hello, cooledUntil: number | null): RunEvent {
  const { id, name, memory, cores, labels, arch, platform, slots } = runner;
  const caps = { memory, cores, labels, arch, platform };
  return { type: "attach", runner: id, name, want, holding, caps, cooledUntil, slots };
}

/**
 * The event of a frame after hello, or the answer the runner gets instead. `blobSize` gives the
 * size of an output blob in storage (null: it is not there).
 */
export async function frameEvent(
  runner: string,
  frame: Exclude<RunnerMessage, Hello | Log>,
  blobSize: (sha256: string) => Promise<number | null>,
): Promise<{ event: RunEvent } | { reply: CoordinatorMessage }> {
  switch (frame.type) {
    case "want":
      return { event: { type: "want", runner, want: frame.want, received: frame.received, started: frame.started } };
    case "started":
      return { event: { type: "started", runner, tasks: frame.tasks } };
    case "results": {
      const { want, received, started } = frame;
      const results = await Promise.all(frame.results.map((r) => checkBlob(r, blobSize)));
      return { event: { type: "results", runner, results, want, received, started } };
    }
    case "reject":
      return { event: { type: "reject", runner, tasks: frame.tasks } };
    case "status": {
      const message = `"status" frames go to the pool socket, not a run socket`;
      return { reply: { type: "error", message, fatal: false } };
    }
  }
}

/** A result whose output blob is not in storage (at its size) becomes a retryable failure. */
async function checkBlob(r: TaskResult, blobSize: (sha256: string) => Promise<number | null>): Promise<TaskResult> {
  if (!r.outputRef || (await blobSize(r.outputRef.sha256)) === r.outputRef.size) return r;
  const message = `the output blob sha256:${r.outputRef.sha256} (${r.outputRef.size} bytes) was not uploaded`;
  return { ...r, ok: false, outputRef: undefined, failure: { kind: "output", message, retryable: true } };
}
