// The socket meter (worker/durable/meter.ts) driven with a fake clock: the burst passes, the
// next frame closes, the buckets refill at their rate, bytes are metered as well as frames, a
// frame bigger than the byte burst never passes, and a closed socket's frames are dropped.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_LIMITS,
  entryTokens,
  frameBytes,
  freshMeter,
  meter,
  SocketMeters,
  type Limits,
  type Verdict,
} from "../../worker/durable/meter";
import { MAX_FRAME_BYTES } from "../../core/protocol/messages";

const MiB = 1024 * 1024;
const limits: Limits = { frames: { perSec: 50, burst: 200 }, bytes: { perSec: 8 * MiB, burst: 32 * MiB } };

/** Sends `n` frames of `bytes` at `at` ms through one meter; the verdicts. */
function frames(n: number, { bytes = 100, at = () => 0 }: { bytes?: number; at?: (i: number) => number } = {}) {
  let state = freshMeter(limits, at(0));
  const verdicts: Verdict[] = [];
  for (let i = 0; i < n; i++) {
    const step = meter(state, bytes, limits, at(i));
    state = step.state;
    verdicts.push(step.verdict);
  }
  return { state, verdicts };
}

describe("socket meter", () => {
  it("charges a frame's attempts a token per 8: a runner sending 5,000 results a second in frames of 16 stays within a run socket's limit", () => {
    expect([0, 1, 8, 9, 1024].map(entryTokens)).toEqual([0, 1, 1, 2, 128]);
    const run = DEFAULT_LIMITS.run;
    let state = freshMeter(run, 0);
    // 10 s of it: 312 frames a second, each a frame token and 2 for its entries.
    for (let i = 0; i < 3125; i++) {
      const at = i * 3.2;
      for (const cost of [1, entryTokens(16)]) {
        const step = meter(state, 2000, run, at, cost);
        expect(step.verdict.type).toBe("pass");
        state = step.state;
      }
    }
  });
  it("passes the burst at once and closes on the next frame, naming the count and the limit", () => {
    const { verdicts, state } = frames(202);
    expect(verdicts.slice(0, 200).every((v) => v.type === "pass")).toBe(true);
    expect(verdicts[200]).toEqual({ type: "close", reason: "rate limit: 201 frames in 0.00 s (50/s, burst 200)" });
    expect(verdicts[201]).toEqual({ type: "drop" });
    expect(state.closed).toBe("rate limit: 201 frames in 0.00 s (50/s, burst 200)");
    expect(state.count).toBe(201);
  });

  it("refills at its rate: a socket sending at the rate is never closed, one faster is once its burst is spent", () => {
    const steady = frames(2000, { at: (i) => i * 20 }); // 50/s for 40 s
    expect(steady.verdicts.every((v) => v.type === "pass")).toBe(true);
    const faster = frames(2000, { at: (i) => i * 15 }); // 66.7/s: 0.25 frame a frame out of the burst
    const closed = faster.verdicts.findIndex((v) => v.type === "close");
    expect(closed).toBeGreaterThan(700);
    expect(closed).toBeLessThan(900);
    expect(faster.verdicts[closed]).toEqual({
      type: "close",
      reason: expect.stringMatching(/^rate limit: \d+ frames in 1[12]\.\d\d s \(50\/s, burst 200\)$/),
    });
  });

  it("never lets more than burst + rate × elapsed + 1 frames through before closing", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 600 }), (gaps) => {
        let t = 1_000;
        let state = freshMeter(limits, t);
        for (const gap of gaps) {
          t += gap;
          const step = meter(state, 10, limits, t);
          state = step.state;
          if (step.verdict.type === "close") break;
        }
        const elapsed = (t - 1_000) / 1000;
        expect(state.count).toBeLessThanOrEqual(limits.frames.burst + limits.frames.perSec * elapsed + 1);
      }),
    );
  });

  it("meters bytes: 32 MiB at once passes, more within the second closes; at 8 MiB/s it refills", () => {
    const burst = frames(5, { bytes: 8 * MiB, at: () => 0 });
    expect(burst.verdicts.map((v) => v.type)).toEqual(["pass", "pass", "pass", "pass", "close"]);
    expect(burst.verdicts[4]).toEqual({
      type: "close",
      reason: "rate limit: 40 MiB in 0.00 s (8 MiB/s, burst 32 MiB)",
    });
    const paced = frames(20, { bytes: 8 * MiB, at: (i) => i * 1000 });
    expect(paced.verdicts.every((v) => v.type === "pass")).toBe(true);
  });

  it("lets one legal frame of the largest size through, and closes on a frame over the byte burst", () => {
    expect(DEFAULT_LIMITS.pool.bytes.burst).toBeGreaterThanOrEqual(MAX_FRAME_BYTES);
    expect(frames(1, { bytes: MAX_FRAME_BYTES }).verdicts).toEqual([{ type: "pass" }]);
    const { verdicts, state } = frames(2, { bytes: 32 * MiB + 1 });
    expect(verdicts[0]).toEqual({
      type: "close",
      reason: "rate limit: a frame of 33554433 bytes is over the byte burst (33554432)",
    });
    expect(verdicts[1]).toEqual({ type: "drop" });
    expect(state.count).toBe(1);
  });

  it("keeps one meter per socket and counts each socket it closes once, by kind", () => {
    let now = 0;
    const meters = new SocketMeters<object>(DEFAULT_LIMITS, () => now);
    const [a, b, c] = [{}, {}, {}];
    for (let i = 0; i < 300; i++) meters.check(a, "pool", 50);
    expect(meters.check(b, "pool", 50)).toEqual({ type: "pass" });
    for (let i = 0; i < 4000; i++) expect(meters.check(c, "run", 50).type).toBe("pass"); // a run socket's burst
    now = 10;
    expect(meters.check(a, "pool", 50)).toEqual({ type: "drop" });
    expect(meters.closed).toEqual({ pool: 1, run: 0, watch: 0 });
    meters.count("watch");
    expect(meters.closed.watch).toBe(1);
  });

  it("counts the UTF-8 bytes of a text frame", () => {
    for (const text of ["", "ascii", "é", "€", "😀", `{"stderr":"naïve — ☃ 𝄞"}`])
      expect(frameBytes(text), text).toBe(new TextEncoder().encode(text).length);
    expect(frameBytes(new ArrayBuffer(7))).toBe(7);
  });
});
