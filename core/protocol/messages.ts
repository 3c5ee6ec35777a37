/**
 * The one wire schema between runners and the coordinator, validated at both ends.
 *
 * A runner keeps one socket to the RunnerPool (presence, matchmaking) and one per run it works
 * on (the data path to that run's DagRun). Every frame is a JSON object discriminated by
 * `type`; the first frame on each socket is `hello` carrying PROTOCOL_VERSION. Imports nothing
 * runtime-specific: the Worker and the Node runner both use it.
 *
 * Heartbeats are the text frames "ping" (runner) and "pong" (coordinator), answered without
 * waking a hibernating Durable Object; they are not JSON and never reach the decoder.
 */
import { z } from "zod";

export const PROTOCOL_VERSION = 4;

/** Largest frame either side accepts (the Durable Object limit for a received message is 32 MiB). */
export const MAX_FRAME_BYTES = 32 * 1024 * 1024;

/** The largest envelope a tasks frame carries; a larger one is fetched by the runner (`stdinBytes`). */
export const ENVELOPE_INLINE_BYTES = 8 * 1024 * 1024;

export const HEARTBEAT = { ping: "ping", pong: "pong" } as const;

/**
 * Device reports (`status.device`): a runner sends one about every `heartbeatMs / perHeartbeat`.
 * The pool keeps one per runner per such period, taking one that arrives up to `early` of the
 * period sooner (the network's jitter), and drops the rest; a runner allows itself half of that.
 */
export const DEVICE_REPORT = { perHeartbeat: 2, early: 0.1 } as const;

/**
 * WebSocket close codes the coordinator uses; 4000–4999 are free for applications. What a runner
 * does on each is in docs/limits.md.
 */
export const CLOSE = {
  /** A bad first frame or protocol version (fatal: the runner stops). */
  protocol: 4400,
  /** The run ended; the runner leaves it. */
  finished: 4000,
  /** No heartbeat within the limit; the runner reconnects. */
  silent: 4408,
  /** A newer socket of the same runner took over; this one is not reopened. */
  replaced: 4409,
  /** The socket sent more frames or bytes than its rate limit; the runner backs off, then reconnects. */
  rateLimited: 4429,
  /** The operator revoked the device: its credential is refused from now on (fatal: the runner exits). */
  revoked: 4403,
} as const;

const runnerInfo = z.strictObject({
  id: z.string().min(1).max(128),
  name: z.string().min(1).max(128),
  platform: z.string().max(64),
  arch: z.string().max(64),
  cores: z.number().int().nonnegative(),
  memory: z.number().nonnegative(),
  freeMemory: z.number().nonnegative(),
  slots: z.number().int().nonnegative(),
  labels: z.array(z.string().max(64)).max(64),
  /** distro-runner's version. */
  version: z.string().max(64),
  /** The Node.js version it runs on (`process.versions.node`). */
  node: z.string().max(32).optional(),
});
export type RunnerInfo = z.infer<typeof runnerInfo>;

/** The device of a runner id: runner processes of one device are `<device>` and `<device>.<k>`. */
export function deviceOfRunner(runner: string): string {
  const dot = runner.indexOf(".");
  return dot < 0 ? runner : runner.slice(0, dot);
}

/** `input`: the task's inputs cannot be made (a file that does not hash to its sha256, an envelope too large): not retried. */
const FAILURE_KINDS = ["exit", "trap", "timeout", "memory", "bad_module", "output", "input", "lost"] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

const failure = z.strictObject({
  kind: z.enum(FAILURE_KINDS),
  message: z.string().max(4096),
  retryable: z.boolean(),
  exitCode: z.number().int().optional(),
});
export type Failure = z.infer<typeof failure>;

/**
 * The bounds of the frames' fields that the schema below and the checked path for `results`
 * frames (fast-results.ts) both hold to, and the runner fills its frames up to.
 */
export const FRAME_LIMITS = {
  /** A task instance's key (`id` or `id[index]`): a task id is at most 128 characters. */
  taskKeyChars: 160,
  /** The tail of stderr a result carries. */
  stderrChars: 8192,
  resultsPerFrame: 1024,
  /** The most a `want` asks for, and the most attempts one frame names (started, reject, …). */
  want: 4096,
  attemptRefs: 4096,
} as const;

/** A task instance's key (`id` or `id[index]`). */
const taskKey = z.string().min(1).max(FRAME_LIMITS.taskKeyChars);
/** A run's id, as the coordinator gives it. */
const runId = z.string().regex(/^[0-9a-f]{64}$/);
const sha256 = z.string().regex(/^[0-9a-f]{64}$/);

/** An output kept in blob storage instead of inline. */
const blobRef = z.strictObject({ sha256, size: z.number().int().nonnegative() });
export type BlobRef = z.infer<typeof blobRef>;

/** One task attempt given to a runner. */
const assignment = z.strictObject({
  task: taskKey,
  attempt: z.number().int().positive(),
  module: sha256,
  args: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  /**
   * The task envelope. An input kept in blob storage stands in it as {"$ref": "<sha256>"}; the
   * runner fetches the blobs listed in `refs` and puts their values in place before running.
   */
  stdin: z.string(),
  /**
   * Set when the envelope is too large for a frame (over ENVELOPE_INLINE_BYTES): `stdin` is empty,
   * and the runner fetches the envelope, this many bytes, from `GET /api/runners/envelope`.
   */
  stdinBytes: z.number().int().positive().optional(),
  /**
   * Sent ahead: the task's one input not yet there is the output of attempt `attempt` of `task`,
   * which this runner holds. The runner starts it only once that attempt succeeded here, with
   * that output (as the task ABI shows a dependency's output: JSON, or {"$bytes": base64})
   * written into `stdin` at character `at`. If that attempt fails or is stopped, the runner drops
   * this one unrun (the coordinator takes it back on its own); if its output is too large to stay
   * inline, the runner hands this one back (`reject`).
   */
  after: z
    .strictObject({ task: taskKey, attempt: z.number().int().positive(), at: z.number().int().nonnegative() })
    .optional(),
  /** The inputs of the envelope that are files of the run's inputs ({"$file": …}); the runner resolves those only. */
  files: z.array(z.string()).optional(),
  refs: z.array(sha256).default([]),
  timeoutMs: z.number().int().positive(),
  memoryBytes: z.number().int().positive(),
  maxOutputBytes: z.number().int().positive(),
  /** Outputs larger than this are uploaded (PUT /api/blobs) and reported as `outputRef`. */
  inlineOutputBytes: z.number().int().positive(),
});
export type Assignment = z.infer<typeof assignment>;

/** The end of one attempt as the runner saw it. */
const result = z.strictObject({
  task: taskKey,
  attempt: z.number().int().positive(),
  ok: z.boolean(),
  /** stdout, base64; present when ok and small. */
  output: z.string().optional(),
  /** stdout uploaded to blob storage; present when ok and large. */
  outputRef: blobRef.optional(),
  /** The last few KiB of stderr. */
  stderr: z.string().max(FRAME_LIMITS.stderrChars).default(""),
  failure: failure.optional(),
  durationMs: z.number().nonnegative(),
});
export type TaskResult = z.infer<typeof result>;

/**
 * An attempt's stderr, streamed while it runs (`log` frames): kept whole up to `attemptBytes`
 * (the rest is cut, and counted), sent in chunks of at most `chunkBytes` of stderr each.
 * Offsets count bytes of the log's UTF-8 text.
 */
export const LOG_LIMITS = { attemptBytes: 1024 * 1024, chunkBytes: 64 * 1024 } as const;

const want = z.number().int().min(0).max(FRAME_LIMITS.want);
const attemptRef = z.strictObject({ task: taskKey, attempt: z.number().int().positive() });
const attemptRefs = z.array(attemptRef).max(FRAME_LIMITS.attemptRefs);
/** Tasks received on this socket so far: lets the coordinator subtract frames still in flight. */
const received = z.number().int().nonnegative();

/** Frames a runner sends. */
export const runnerMessage = z.discriminatedUnion("type", [
  /**
   * First frame on every socket. On a run socket, `holding` lists the attempts of that run the
   * runner still runs or has unsent results for (after a reconnect).
   */
  z.strictObject({
    type: z.literal("hello"),
    protocol: z.number().int(),
    runner: runnerInfo,
    want: want.default(0),
    holding: attemptRefs.default([]),
  }),
  /**
   * Pool socket: how many slots are idle and which runs this runner is attached to; `slots`
   * when the runner resized itself (free RAM fell or returned).
   */
  z.strictObject({
    type: z.literal("status"),
    free: want,
    slots: want.optional(),
    runs: z.array(runId).max(1024),
    /** Sent about twice per heartbeat period (DEVICE_REPORT): free memory (bytes) and CPU load (0–100 %). */
    device: z.strictObject({ freeMemory: z.number().nonnegative(), load: z.number().min(0).max(100) }).optional(),
  }),
  /**
   * Run socket: this runner takes `want` more tasks beyond the `received` it has had on this
   * socket. Absolute, so a frame crossing a dispatch in flight never over-grants. `started`:
   * attempts it holds that it started since it last said (an attempt's lease runs from then).
   */
  z.strictObject({ type: z.literal("want"), want, received, started: attemptRefs.default([]) }),
  /** Run socket: finished attempts, and the new `want` (as in the "want" frame). */
  z.strictObject({
    type: z.literal("results"),
    results: z.array(result).min(1).max(FRAME_LIMITS.resultsPerFrame),
    want,
    received,
    started: attemptRefs.default([]),
  }),
  /**
   * Run socket: attempts it started, when no results or want frame is due to say it: at most one
   * such frame a half heartbeat.
   */
  z.strictObject({ type: z.literal("started"), tasks: attemptRefs.min(1) }),
  /** Run socket: tasks received beyond the runner's credit, handed back untouched. */
  z.strictObject({ type: z.literal("reject"), tasks: attemptRefs.min(1) }),
  /**
   * Run socket: stderr of a running attempt, from byte `offset` of its log (LOG_LIMITS). The
   * attempt's last one may carry `dropped`: bytes from `offset + chunk` on the runner did not
   * send (past the cut, over its budget, or while its socket was down).
   */
  z.strictObject({
    type: z.literal("log"),
    task: taskKey,
    attempt: z.number().int().positive(),
    offset: z.number().int().nonnegative().max(LOG_LIMITS.attemptBytes),
    chunk: z.string().max(LOG_LIMITS.chunkBytes),
    dropped: z.number().int().nonnegative().optional(),
  }),
]);
export type RunnerMessage = z.infer<typeof runnerMessage>;
/** A runner frame as a sender may write it (fields with defaults may be left out). */
export type RunnerMessageInput = z.input<typeof runnerMessage>;

/** Frames the coordinator sends. */
export const coordinatorMessage = z.discriminatedUnion("type", [
  /**
   * `heartbeatMs`: a runner silent for longer is presumed gone; ping well within it. `slots`
   * (pool socket): the most slots the coordinator counts for the runner (MAX_DEVICE_SLOTS), and
   * the most attempts a run lets it hold: it offers no more.
   */
  z.strictObject({
    type: z.literal("welcome"),
    protocol: z.number().int(),
    run: z.string().optional(),
    heartbeatMs: z.number().int().positive(),
    slots: z.number().int().nonnegative().optional(),
  }),
  /**
   * Pool socket: a run has work this runner may be able to take; `priority` is that of its most
   * important ready task (a runner gives freed slots to its highest-priority run first).
   */
  z.strictObject({ type: z.literal("join"), run: z.string(), priority: z.number().int().default(0) }),
  /** Run socket: new attempts; `backlog` is how many ready tasks remain after these. */
  z.strictObject({ type: z.literal("tasks"), tasks: z.array(assignment), backlog: z.number().int().nonnegative() }),
  /** Run socket: stop these attempts; their results are no longer wanted. */
  z.strictObject({ type: z.literal("cancel"), tasks: attemptRefs.min(1) }),
  /**
   * Run socket: another runner is idle; hand back (`reject`) up to `count` attempts of this run
   * held and not started. Started ones are not handed back: a steal never runs a task twice.
   */
  z.strictObject({ type: z.literal("steal"), count: z.number().int().positive().max(4096) }),
  /** Run socket: the run ended; the socket closes after this frame. */
  z.strictObject({ type: z.literal("finished"), status: z.string() }),
  /** A frame could not be accepted; the socket stays open unless the error is fatal. */
  z.strictObject({ type: z.literal("error"), message: z.string(), fatal: z.boolean() }),
]);
export type CoordinatorMessage = z.infer<typeof coordinatorMessage>;
