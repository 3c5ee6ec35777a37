// The runner's device sampling (runner/sampler.ts) with a fake host and fake timers: the sampling
// period, the device report about once per half heartbeat (never sooner, kept across a restart),
// the resize under --slots auto, and nothing done once the runner drains.
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { DeviceSample } from "../../runner/device";
import { DeviceSampler, type SamplerHost, type SamplerOptions } from "../../runner/sampler";

const MiB = 1024 ** 2;

beforeEach(() => {
  vi.useFakeTimers({ now: 0 });
});
afterEach(() => {
  vi.useRealTimers();
});

interface Fake {
  sampler: DeviceSampler;
  samples: number[];
  reports: { at: number; device: DeviceSample }[];
  resizes: [number, number][];
  state: { accepting: boolean; free: number; sendable: boolean; sample?: () => Promise<DeviceSample> };
}

function fake(options: SamplerOptions = {}): Fake {
  const f: Omit<Fake, "sampler"> = {
    samples: [],
    reports: [],
    resizes: [],
    state: { accepting: true, free: 2048 * MiB, sendable: true },
  };
  const host: SamplerHost = {
    sample: () => {
      f.samples.push(Date.now());
      return f.state.sample?.() ?? Promise.resolve({ freeMemory: f.state.free, load: 12.5 });
    },
    accepting: () => f.state.accepting,
    resize: (slots, freeMemory) => f.resizes.push([slots, freeMemory]),
    report: (device) => {
      if (f.state.sendable) f.reports.push({ at: Date.now(), device });
      return f.state.sendable;
    },
  };
  return { ...f, sampler: new DeviceSampler(host, { now: () => Date.now(), ...options }) };
}

describe("device sampler", () => {
  it("samples at once and every sampleMs, and reports once per half heartbeat at the first sample due", async () => {
    const f = fake({ sampleMs: 200 });
    f.sampler.start(2000); // reports due 950 ms apart (half the period, less half the pool's 10 % margin)
    await vi.advanceTimersByTimeAsync(2100);
    f.sampler.stop();
    expect(f.samples).toEqual([0, 200, 400, 600, 800, 1000, 1200, 1400, 1600, 1800, 2000]);
    expect(f.reports.map((r) => r.at)).toEqual([0, 1000, 2000]);
    expect(f.reports[0]!.device).toEqual({ freeMemory: 2048 * MiB, load: 12.5 });
    await vi.advanceTimersByTimeAsync(1000);
    expect(f.samples).toHaveLength(11); // stopped
  });

  it("samples at most every half heartbeat and at least every 200 ms", async () => {
    const slow = fake({ sampleMs: 5000 });
    slow.sampler.start(2000);
    await vi.advanceTimersByTimeAsync(2500);
    slow.sampler.stop();
    expect(slow.samples).toEqual([0, 1000, 2000]);
    const fast = fake({ sampleMs: 10 });
    fast.sampler.start(2000);
    await vi.advanceTimersByTimeAsync(450);
    fast.sampler.stop();
    expect(fast.samples).toEqual([2500, 2700, 2900]);
  });

  it("a report the socket could not take goes out with the next sample; a restart does not report sooner", async () => {
    const f = fake({ sampleMs: 200 });
    f.state.sendable = false;
    f.sampler.start(2000);
    await vi.advanceTimersByTimeAsync(300);
    f.state.sendable = true;
    await vi.advanceTimersByTimeAsync(100);
    expect(f.reports.map((r) => r.at)).toEqual([400]);
    await vi.advanceTimersByTimeAsync(200);
    f.sampler.start(2000); // a reconnect's welcome at 600 ms: sampled at once, but the report waits
    await vi.advanceTimersByTimeAsync(800);
    f.sampler.stop();
    expect(f.samples.filter((t) => t === 600)).toHaveLength(2);
    expect(f.reports.map((r) => r.at)).toEqual([400, 1400]);
  });

  it("under --slots auto resizes from each sample's free RAM; otherwise never", async () => {
    const policy = { ramPerSlotBytes: 128 * MiB, reserveRamBytes: 512 * MiB };
    const auto = fake({ sampleMs: 200, auto: { cores: 4, policy } });
    auto.state.free = 512 * MiB + 2 * 128 * MiB;
    auto.sampler.start(2000);
    await vi.advanceTimersByTimeAsync(100);
    auto.state.free = 100 * MiB;
    await vi.advanceTimersByTimeAsync(200);
    auto.state.free = 8192 * MiB;
    await vi.advanceTimersByTimeAsync(200);
    auto.sampler.stop();
    expect(auto.resizes).toEqual([
      [2, 768 * MiB],
      [1, 100 * MiB],
      [4, 8192 * MiB],
    ]);
    const fixed = fake({ sampleMs: 200 });
    fixed.sampler.start(2000);
    await vi.advanceTimersByTimeAsync(500);
    fixed.sampler.stop();
    expect(fixed.resizes).toEqual([]);
    expect(fixed.samples.length).toBeGreaterThan(1);
  });

  it("takes no sample while one is pending, ignores one that fails, and acts on none once draining", async () => {
    const f = fake({ sampleMs: 200, auto: { cores: 2, policy: { ramPerSlotBytes: MiB, reserveRamBytes: 0 } } });
    f.state.sample = () => new Promise((resolve) => setTimeout(() => resolve({ freeMemory: MiB, load: 0 }), 500));
    f.sampler.start(2000);
    await vi.advanceTimersByTimeAsync(450);
    expect(f.samples).toEqual([0]); // the ticks at 200 and 400 found it pending
    f.state.accepting = false;
    await vi.advanceTimersByTimeAsync(100); // it resolves at 500, after the runner began draining
    expect(f.reports).toEqual([]);
    expect(f.resizes).toEqual([]);
    await vi.advanceTimersByTimeAsync(500);
    expect(f.samples).toEqual([0]);

    f.state.accepting = true;
    f.state.sample = () => Promise.reject(new Error("systeminformation failed"));
    await vi.advanceTimersByTimeAsync(200);
    f.state.sample = undefined;
    await vi.advanceTimersByTimeAsync(200);
    f.sampler.stop();
    expect(f.reports.map((r) => r.at)).toEqual([1400]);
  });
});
