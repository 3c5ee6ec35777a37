/**
 * Performs what a transition of the run's state machine returned (run/machine.ts `Effect`): frames
 * to runners, the run's demand to the pool, the run index, the result cache, lost attempts and
 * stray frames (conduct.ts), and the end of the run. The DagRun calls `perform` after each event's transaction; what each effect needs of the
 * object is the host. Each effect is performed on its own: one that fails is logged with the run's
 * id and the rest still happen (the transition is committed by then, so there is nothing to undo).
 */
import type { DemandClass } from "../../core/match.js";
import { type Assignment, type CoordinatorMessage, ENVELOPE_INLINE_BYTES } from "../../core/protocol/messages.js";
import type { RunStatus } from "../../core/status.js";
import type { Effect } from "../run/machine.js";
import type { Meta } from "./meta.js";

/** The demand the pool last confirmed (JSON). */
const DEMAND = "demand";
/**
 * While a telling is unconfirmed: when the alarm tells the demand again. It is written before
 * the call, so a call that fails or dies with a restart leaves it, and the alarm (which survives
 * a restart) repairs what the pool missed.
 */
const DEMAND_RETRY = "demand_retry";
/** How long after an unconfirmed telling the alarm tells the demand again. */
const DEMAND_RETRY_MS = 1_000;

/**
 * Each run object's demand state (by its meta), in memory: the two meta values above, mirrored
 * (only this module writes them and every event reads them; after a restart they are read once
 * from storage), and the telling out with the newest demand asked while it is (one call at a
 * time, so the pool applies them in the order they were asked).
 */
interface DemandState {
  told: string;
  retry: number | null;
  out?: { wanted: string; next?: DemandClass[] };
}
const states = new WeakMap<Meta, DemandState>();

function state(meta: Meta): DemandState {
  let known = states.get(meta);
  if (!known) {
    const retry = meta.meta(DEMAND_RETRY);
    known = { told: meta.meta(DEMAND) ?? "[]", retry: retry === undefined ? null : Number(retry) };
    states.set(meta, known);
  }
  return known;
}

/** What the effects need of their run. */
export interface EffectsHost {
  /** The run's id, for the log. */
  runId: string;
  meta: Meta;
  /** Sends a frame to every socket of `runner`. */
  send(runner: string, message: CoordinatorMessage): void;
  /** Tells the pool the run's ready work that waits for runners, by class (none withdraws it). */
  demand(classes: DemandClass[]): Promise<void>;
  /** Arms the run's alarm for `at` at the latest (a telling to repeat then if unconfirmed). */
  retryAt(at: number): Promise<void>;
  /** The run's status changed: its line in the index is refreshed now, and its watchers hear of it. */
  status(status: RunStatus): Promise<void>;
  /** Starts the result-cache lookup loop, if it is not running. Never rejects. */
  lookup(): Promise<void>;
  /** Files accepted outputs in the result cache, with the runner that produced each. Never rejects. */
  file(entries: { key: string; task: string; runner: string }[]): Promise<void>;
  /** The run lost `attempts` of `runner`'s (its device may be cooled down). */
  lost(runner: string, attempts: number): Promise<void>;
  /** `runner`'s frame named `frames` attempts it does not hold. */
  stray(runner: string, frames: number): Promise<void>;
  /** The run ended: its alarm goes, its runners hear `finished`, its watchers get the last update. */
  finish(status: RunStatus): Promise<void>;
}

/** Performs `effects` in order, each whatever became of the others. Never rejects. */
export async function perform(host: EffectsHost, effects: readonly Effect[]): Promise<void> {
  for (const effect of effects) {
    try {
      await performOne(host, effect);
    } catch (e) {
      console.error(`DagRun ${host.runId}: the "${effect.type}" effect failed`, e);
    }
  }
}

async function performOne(host: EffectsHost, effect: Effect): Promise<void> {
  switch (effect.type) {
    case "dispatch":
      for (const tasks of frames(effect.tasks))
        host.send(effect.runner, { type: "tasks", tasks, backlog: effect.backlog });
      return;
    case "cancel":
      return host.send(effect.runner, { type: "cancel", tasks: effect.tasks });
    case "steal":
      return host.send(effect.runner, { type: "steal", count: effect.count });
    case "demand":
      return tellDemand(host, effect.classes);
    case "status":
      return host.status(effect.status);
    case "lookup":
      // The loop outlives the event: it applies events of its own as the cache answers.
      void host.lookup();
      return;
    case "cache":
      void host.file(effect.entries);
      return;
    case "lost":
      return host.lost(effect.runner, effect.attempts);
    case "stray":
      return host.stray(effect.runner, effect.frames);
    case "finished":
      try {
        await host.finish(effect.status);
      } finally {
        await tellDemand(host, [], true);
      }
      return;
  }
}

/**
 * Tells the pool the run's demand when it differs from the newest one asked or confirmed
 * (`always`: in any case, unless that very demand is on its way). One telling is out at a time:
 * one asked meanwhile waits for it, the newest replacing any older. The confirmed memo is
 * written only when a call returns; a call that fails leaves the retry time set, and the alarm
 * tells the demand again (`retryDemand`).
 */
async function tellDemand(host: EffectsHost, classes: DemandClass[], always = false): Promise<void> {
  const wanted = JSON.stringify(classes);
  const known = state(host.meta);
  const { out } = known;
  if (out) {
    const pending = out.next ? JSON.stringify(out.next) : out.wanted;
    if (pending === wanted) return;
    out.next = classes;
    // Should the call out fail, the alarm tells the newest (an ended run's alarm was cleared).
    await armRetry(host);
    return;
  }
  if (!always && known.retry === null && known.told === wanted) return;
  await send(host, classes);
}

/**
 * One call to the pool. The demand asked while it was out goes next, detached: the event that
 * made this call does not wait for the ones after it.
 */
async function send(host: EffectsHost, classes: DemandClass[]): Promise<void> {
  const { meta } = host;
  const known = state(meta);
  const telling: { wanted: string; next?: DemandClass[] } = { wanted: JSON.stringify(classes) };
  known.out = telling;
  try {
    await armRetry(host);
    await host.demand(classes);
  } finally {
    known.out = undefined;
  }
  meta.setMeta(DEMAND, telling.wanted);
  known.told = telling.wanted;
  if (!telling.next) {
    meta.deleteMeta(DEMAND_RETRY);
    known.retry = null;
    return;
  }
  void send(host, telling.next).catch((e: unknown) =>
    console.error(`DagRun ${host.runId}: telling the pool the demand failed`, e),
  );
}

/** Sets the retry time a period from now and arms the alarm for it. */
async function armRetry(host: EffectsHost): Promise<void> {
  const at = Date.now() + DEMAND_RETRY_MS;
  host.meta.setMeta(DEMAND_RETRY, String(at));
  state(host.meta).retry = at;
  await host.retryAt(at);
}

/** When the alarm should tell the demand again (null: the pool confirmed the newest). */
export function demandRetryAt(meta: Meta): number | null {
  return state(meta).retry;
}

/** The alarm's part: tells `classes` (the run's demand now) again if a telling went unconfirmed. Never rejects. */
export async function retryDemand(host: EffectsHost, classes: DemandClass[]): Promise<void> {
  if (demandRetryAt(host.meta) === null) return;
  try {
    await tellDemand(host, classes, true);
  } catch (e) {
    console.error(`DagRun ${host.runId}: telling the pool the demand again failed`, e);
  }
}

/** Most envelope, args and env bytes one tasks frame carries, well within the frame limit (MAX_FRAME_BYTES). */
const FRAME_ENVELOPE_BYTES = 16 * 1024 * 1024;

/** The tasks of one dispatch in frames of at most FRAME_ENVELOPE_BYTES of envelopes (one frame when none are big; one for no tasks). */
export function frames(tasks: Assignment[]): Assignment[][] {
  const out: Assignment[][] = [[]];
  let bytes = 0;
  for (const task of tasks) {
    // A bound on its UTF-8 size without encoding it: at most 3 bytes a character, an inline
    // envelope at most ENVELOPE_INLINE_BYTES and args and env at most 4 MiB (dispatch.ts
    // `oversize`); so a frame holds at most 28 MiB of them.
    let chars = 0;
    for (const a of task.args ?? []) chars += a.length;
    for (const [k, v] of Object.entries(task.env ?? {})) chars += k.length + v.length;
    const size = Math.min(task.stdin.length * 3, ENVELOPE_INLINE_BYTES) + Math.min(chars * 3, 4 * 1024 * 1024);
    if (out.at(-1)!.length > 0 && bytes + size > FRAME_ENVELOPE_BYTES) {
      out.push([]);
      bytes = 0;
    }
    out.at(-1)!.push(task);
    bytes += size;
  }
  return out;
}
