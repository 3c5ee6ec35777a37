/**
 * How a run holds its runners to their device's limits (docs/security.md): attempts it loses are
 * reported to the pool, which may cool the device down; a cool-down stops new leases to every
 * runner of that device here; a socket whose frames keep naming attempts its runner does not hold
 * is closed. (A runner's credit within its device's slot cap is the machine's: `maxHeld`.)
 * In-memory counts are per object life, which is what a socket's life needs.
 */
import { deviceOfRunner } from "../../core/protocol/messages.js";
import type { RunEvent } from "../run/machine.js";

/** Entries naming attempts it does not hold that one runner may send before its sockets close. */
const STRAY_LIMIT = 64;

export interface ConductHost {
  /** Runners attached to the run now. */
  runners(): { id: string }[];
  apply(event: RunEvent): Promise<void>;
  /** Tells the pool the device lost attempts once more: until when it is cooled down, or null. */
  lost(device: string, times: number): Promise<number | null>;
  /** Tells the pool of stray entries, for /metrics. */
  countStray(frames: number): Promise<void>;
  /** Closes the runner's sockets with a protocol error saying `reason`. */
  close(runner: string, reason: string): void;
}

export class Conduct {
  private readonly stray = new Map<string, number>();

  constructor(private readonly host: ConductHost) {}

  /** A runner said hello: its count of stray entries starts again. */
  hello(runner: string): void {
    this.stray.delete(runner);
  }

  /**
   * The run lost `attempts` of `runner`'s in one event (its socket gone, leases run out): the pool
   * hears of one loss, however many attempts it held, so that an honest device whose process
   * dies once with every slot busy is not cooled down for it; a cool-down it starts applies here.
   */
  async lost(runner: string, attempts: number): Promise<void> {
    const device = deviceOfRunner(runner);
    if (attempts <= 0) return;
    const until = await this.host.lost(device, 1);
    if (until !== null) await this.cool(device, until);
  }

  /** `device` is cooled down until `until`: each of its runners here gets nothing new before then. */
  async cool(device: string, until: number): Promise<void> {
    for (const { id } of this.host.runners())
      if (deviceOfRunner(id) === device) await this.host.apply({ type: "cool", runner: id, until });
  }

  /** `runner` sent `frames` entries naming attempts it does not hold; past STRAY_LIMIT its sockets close. */
  async strayFrames(runner: string, frames: number): Promise<void> {
    const count = (this.stray.get(runner) ?? 0) + frames;
    this.stray.set(runner, count);
    if (count > STRAY_LIMIT) {
      this.stray.delete(runner);
      this.host.close(runner, "too many frames about attempts it does not hold");
    }
    await this.host.countStray(frames);
  }
}
