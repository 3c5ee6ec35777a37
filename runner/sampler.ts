/**
 * The runner's device sampling: every couple of seconds (at most half the heartbeat period) it
 * reads free memory and CPU load, resizes the runner under `--slots auto`, and hands the sample to
 * the runner for the pool about once per half heartbeat period: at the first sample that period
 * after the last report. Not sooner: the pool keeps one report per runner per period and drops the
 * rest (DEVICE_REPORT; the runner's own margin is half the pool's, for the jitter of its ticks).
 * The Runner starts it on each welcome; tests drive it with a fake host and fake timers.
 */
import { DEVICE_REPORT } from "../core/protocol/messages.js";
import { autoSlots, type DeviceSample, type SlotPolicy } from "./device.js";

/** What the sampler needs from the runner. */
export interface SamplerHost {
  sample(): Promise<DeviceSample>;
  /** False once the runner drains: no sample is taken or acted on then. */
  accepting(): boolean;
  /** Offers `slots` slots from now on (only called under `--slots auto`). */
  resize(slots: number, freeMemory: number): void;
  /** Sends the pool a status with this device report; false when the socket could not take it. */
  report(device: DeviceSample): boolean;
}

export interface SamplerOptions {
  /** Under `--slots auto`: the cores and RAM policy the slot count follows. */
  auto?: { cores: number; policy: SlotPolicy };
  /** How often to sample (default 2 s; at most half the heartbeat period, at least 200 ms). */
  sampleMs?: number;
  now?: () => number;
}

export class DeviceSampler {
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;
  /** When the last report went out: kept across a reconnect, as the pool keeps its history. */
  private reportedAt = -Infinity;
  private period = Infinity;

  constructor(
    private readonly host: SamplerHost,
    private readonly options: SamplerOptions = {},
  ) {}

  /** (Re)starts sampling at once for the heartbeat period the pool announced in its welcome. */
  start(heartbeatMs: number): void {
    this.stop();
    const every = Math.max(200, Math.min(this.options.sampleMs ?? 2000, Math.floor(heartbeatMs / 2)));
    this.period = (heartbeatMs / DEVICE_REPORT.perHeartbeat) * (1 - DEVICE_REPORT.early / 2);
    void this.tick();
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async tick(): Promise<void> {
    const { host, options } = this;
    if (!host.accepting() || this.sampling) return;
    this.sampling = true;
    const device = await host.sample().catch(() => undefined);
    this.sampling = false;
    if (!device || !host.accepting()) return;
    if (options.auto)
      host.resize(autoSlots(options.auto.cores, device.freeMemory, options.auto.policy), device.freeMemory);
    const now = (options.now ?? Date.now)();
    if (now - this.reportedAt < this.period) return;
    if (host.report(device)) this.reportedAt = now;
  }
}
