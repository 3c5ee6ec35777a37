/**
 * Performs what a transition of the run's state machine returned (run/machine.ts `Effect`): frames
 * to runners, the run's demand to the pool, the run index, the result cache, lost attempts and
 * stray frames (conduct.ts), and the end of the run. The DagRun calls `perform` after each event's transaction; what each effect needs of the
 * object is the host. Each effect is performed on its own: one that fails is logged with the run's
 * id and the rest still happen (the transition is committed by then, so there is nothing to undo).
 */
import type { DemandClass } from "../../core/match.js";
import type { CoordinatorMessage } from "../../core/protocol/messages.js";
import type { RunStatus } from "../../core/status.js";
import type { Effect } from "../run/machine.js";
import type { Meta } from "./meta.js";

/** The demand last told to the pool (JSON), or UNKNOWN when a telling failed. */
const DEMAND = "demand";
const UNKNOWN = "?";

/** What the effects need of their run. */
export interface EffectsHost {
  /** The run's id, for the log. */
  runId: string;
  meta: Meta;
  /** Sends a frame to every socket of `runner`. */
  send(runner: string, message: CoordinatorMessage): void;
  /** Tells the pool the run's ready work that waits for runners, by class (none withdraws it). */
  demand(classes: DemandClass[]): Promise<void>;
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
      return host.send(effect.runner, { type: "tasks", tasks: effect.tasks, backlog: effect.backlog });
    case "cancel":
      return host.send(effect.runner, { type: "cancel", tasks: effect.tasks });
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
 * Tells the pool the run's demand when it differs from what it was last told (`always`: in any
 * case). The memo is written before the call, because other events of the run may run while it
 * is on its way and must compare with the newest demand, not the one before; a call that fails
 * leaves the memo unknown, so the next demand is told whatever it is.
 */
async function tellDemand(host: EffectsHost, classes: DemandClass[], always = false): Promise<void> {
  const wanted = JSON.stringify(classes);
  if (!always && (host.meta.meta(DEMAND) ?? "[]") === wanted) return;
  host.meta.setMeta(DEMAND, wanted);
  try {
    await host.demand(classes);
  } catch (e) {
    host.meta.setMeta(DEMAND, UNKNOWN);
    throw e;
  }
}
