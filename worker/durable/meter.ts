/**
 * Rate limits for the coordinator's WebSocket sockets: a token bucket of frames and one of bytes
 * per socket, so that no single socket can keep a Durable Object busy. Both Durable Objects use
 * it (through `SocketMeters`) for every frame that wakes them: runner sockets on the RunnerPool
 * ("pool") and on a DagRun ("run"), and watchers of a run ("watch"). A socket over either limit
 * is to be closed (CLOSE.rateLimited); frames that still arrive on it are dropped unread.
 *
 * Pure: no runtime imports and time is passed in, so unit tests drive it directly. docs/limits.md
 * lists the limits, their Worker vars and defaults.
 */

/** Which socket a frame came in on: the limits differ by what the socket is for. */
export type SocketKind = "pool" | "run" | "watch";
export const SOCKET_KINDS = ["pool", "run", "watch"] as const satisfies readonly SocketKind[];

/** A token bucket: `perSec` tokens a second, holding at most `burst`. */
export interface Rate {
  perSec: number;
  burst: number;
}

export interface Limits {
  frames: Rate;
  bytes: Rate;
}

const MiB = 1024 * 1024;

/**
 * Defaults. A run socket carries a runner's results and credit (thousands a second in a fan-out of
 * no-op tasks); a pool socket a status at most every 100 ms and a device report per half heartbeat;
 * watchers only listen. Bytes: 8 MiB/s, with a burst of 32 MiB (MAX_FRAME_BYTES) so that one legal
 * frame of the largest size always passes a full bucket.
 */
export const DEFAULT_LIMITS: Record<SocketKind, Limits> = {
  run: { frames: { perSec: 2000, burst: 4000 }, bytes: { perSec: 8 * MiB, burst: 32 * MiB } },
  pool: { frames: { perSec: 50, burst: 200 }, bytes: { perSec: 8 * MiB, burst: 32 * MiB } },
  watch: { frames: { perSec: 50, burst: 200 }, bytes: { perSec: 8 * MiB, burst: 32 * MiB } },
};

/** One socket's buckets. */
export interface MeterState {
  /** Tokens left in each bucket at `at`. */
  frames: number;
  bytes: number;
  at: number;
  /** When metering began (the first frame seen) and the frames and bytes seen since. */
  since: number;
  count: number;
  total: number;
  /** Set once the socket went over its limit: the close reason. */
  closed: string | null;
}

/**
 * What to do with a frame: process it; close the socket (`reason` names the count and the limit);
 * or drop it unread, the socket having been closed already.
 */
export type Verdict = { type: "pass" } | { type: "close"; reason: string } | { type: "drop" };

/**
 * Attempts one frame token pays for. An entry of a frame (a result, a task handed back, a start)
 * costs the run a share of a few set-based statements, about a tenth of what a frame costs it:
 * charged one token per frame each, a runner of short tasks would pass its limit at 2,000
 * results a second however well it batches them.
 */
const ENTRIES_PER_TOKEN = 8;

/** The frame tokens `entries` attempts listed in one frame cost beyond the frame's own. */
export function entryTokens(entries: number): number {
  return Math.ceil(entries / ENTRIES_PER_TOKEN);
}

/** A full bucket pair: a socket starts with its whole burst. */
export function freshMeter(limits: Limits, now: number): MeterState {
  return {
    frames: limits.frames.burst,
    bytes: limits.bytes.burst,
    at: now,
    since: now,
    count: 0,
    total: 0,
    closed: null,
  };
}

/**
 * Meters one frame of `bytes` bytes arriving at `now`, worth `cost` frame tokens (a frame that
 * lists many attempts costs the object work per entry, so it is charged per entry):
 * the socket's next state and the verdict.
 */
export function meter(
  state: MeterState,
  bytes: number,
  limits: Limits,
  now: number,
  cost = 1,
): { state: MeterState; verdict: Verdict } {
  if (state.closed !== null) return { state, verdict: { type: "drop" } };
  const seconds = Math.max(0, now - state.at) / 1000;
  const frames = Math.min(limits.frames.burst, state.frames + seconds * limits.frames.perSec) - cost;
  const byteTokens = Math.min(limits.bytes.burst, state.bytes + seconds * limits.bytes.perSec) - bytes;
  const next = { ...state, frames, bytes: byteTokens, at: now, count: state.count + 1, total: state.total + bytes };
  if (frames >= 0 && byteTokens >= 0) return { state: next, verdict: { type: "pass" } };
  const reason = overReason(next, bytes, limits, now);
  return { state: { ...next, closed: reason }, verdict: { type: "close", reason } };
}

/**
 * The close reason, short enough for a WebSocket close frame (at most 123 bytes), e.g.
 * "rate limit: 201 frames in 0.09 s (50/s, burst 200)".
 */
function overReason(state: MeterState, bytes: number, limits: Limits, now: number): string {
  const elapsed = `${((now - state.since) / 1000).toFixed(2)} s`;
  if (state.frames < 0)
    return `rate limit: ${state.count} frames in ${elapsed} (${limits.frames.perSec}/s, burst ${limits.frames.burst})`;
  if (bytes > limits.bytes.burst)
    return `rate limit: a frame of ${bytes} bytes is over the byte burst (${limits.bytes.burst})`;
  const { perSec, burst } = limits.bytes;
  return `rate limit: ${mib(state.total)} in ${elapsed} (${mib(perSec)}/s, burst ${mib(burst)})`;
}

function mib(bytes: number): string {
  return `${(bytes / MiB).toFixed(bytes % MiB === 0 ? 0 : 1)} MiB`;
}

/** The size in bytes of a frame as received: UTF-8 bytes of a text frame, counted without copying it. */
export function frameBytes(raw: string | ArrayBuffer): number {
  if (typeof raw !== "string") return raw.byteLength;
  let n = raw.length;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    // Two bytes below U+0800, three above; a surrogate pair (two units) makes four.
    if (c >= 0x80) n += c < 0x800 || (c >= 0xd800 && c < 0xe000) ? 1 : 2;
  }
  return n;
}

/**
 * The meters of one Durable Object's sockets, keyed by the socket object, and the count of
 * sockets it closed by kind (for /metrics; in memory, so it restarts from zero with the object).
 *
 * The buckets live in memory only. When the object hibernates they are lost, and a woken socket
 * starts again with a full bucket: that gives nothing away, since an object hibernates only after
 * seconds without a frame, and by then every bucket would have refilled anyway (the longest
 * refill of the defaults, 200 frames at 50/s or 32 MiB at 8 MiB/s, takes 4 s).
 */
export class SocketMeters<Socket extends object> {
  private readonly states = new WeakMap<Socket, MeterState>();
  /** Sockets over their limit, by kind. */
  readonly closed: Record<SocketKind, number> = { pool: 0, run: 0, watch: 0 };

  constructor(
    private readonly limits: Record<SocketKind, Limits> = DEFAULT_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /** Meters one frame on `socket`. On a "close" verdict the caller closes the socket; it is counted once. */
  check(socket: Socket, kind: SocketKind, bytes: number, cost = 1): Verdict {
    const limits = this.limits[kind];
    const now = this.now();
    const start = this.states.get(socket) ?? freshMeter(limits, now);
    const { state, verdict } = meter(start, bytes, limits, now, cost);
    this.states.set(socket, state);
    if (verdict.type === "close") this.closed[kind]++;
    return verdict;
  }

  /** Counts a socket closed for its rate limit by another object's meters (the pool counts the DagRuns'). */
  count(kind: SocketKind): void {
    this.closed[kind]++;
  }
}
