// The checked path for `results` frames (core/protocol/fast-results.ts) against the schema it
// stands in for, on generated frames: near the bounds, with one field broken, with fields it
// leaves to the schema. Whatever it vouches for, the schema accepts as the same message, key for
// key in the same order; what it does not, the decoder hands to the schema, so the errors stay
// the schema's.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeRunnerMessage, encode } from "../../core/protocol/codec";
import { fastResults } from "../../core/protocol/fast-results";
import { runnerMessage } from "../../core/protocol/messages";

/** Mostly `good`, now and then `edge` (near a bound, either side of it). */
const mostly = <T>(good: fc.Arbitrary<T>, edge: fc.Arbitrary<T>) =>
  fc.oneof({ arbitrary: good, weight: 12 }, { arbitrary: edge, weight: 1 });
const key = mostly(
  fc.string({ minLength: 1, maxLength: 12 }),
  fc.oneof(fc.string({ minLength: 155, maxLength: 165 }), fc.constantFrom("", "😀".repeat(80), "😀".repeat(81))),
);
const count = mostly(
  fc.integer({ min: 1, max: 40 }),
  fc.oneof(fc.integer({ min: -2, max: 4100 }), fc.constantFrom(0, 4096, 4097, 2 ** 53, 2 ** 53 - 1, 1.5, -0)),
);
const duration = mostly(fc.double({ min: 0, max: 1e6, noNaN: true }), fc.oneof(fc.double(), fc.constantFrom(-0, -1)));
const anything = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.string({ maxLength: 4 }),
  count,
  fc.constant([]),
  fc.constant({}),
);

const hotResult = fc.record(
  {
    task: key,
    attempt: count,
    ok: fc.boolean(),
    output: fc.string({ maxLength: 16 }),
    stderr: fc.oneof(fc.string({ maxLength: 8 }), fc.constantFrom("e".repeat(8192), "e".repeat(8193))),
    durationMs: duration,
  },
  { requiredKeys: ["task", "attempt", "ok", "durationMs"] },
);
/** A result with one field the checked path leaves to the schema, or one of the wrong kind. */
const otherResult = fc.oneof(
  hotResult.map((r) => ({ ...r, outputRef: { sha256: "d".repeat(64), size: 5 } })),
  hotResult.map((r) => ({ ...r, failure: { kind: "exit", message: "boom", retryable: true } })),
  fc
    .tuple(hotResult, fc.constantFrom("task", "attempt", "ok", "output", "stderr", "durationMs", "extra"), anything)
    .map(([r, field, value]) => ({ ...r, [field]: value })),
  fc.tuple(hotResult, fc.constantFrom("task", "attempt", "ok", "durationMs")).map(([r, field]) => {
    const { [field]: _gone, ...rest } = r as Record<string, unknown>;
    return rest;
  }),
);
const ref = fc.record({ task: key, attempt: count });
const frame = (result: fc.Arbitrary<unknown>) =>
  fc
    .tuple(
      fc.record(
        {
          type: mostly(fc.constant("results"), fc.constantFrom("want", "Results")),
          results: mostly(fc.array(result, { minLength: 1, maxLength: 6 }), fc.constant<unknown[]>([])),
          want: count,
          received: count,
          started: fc.array(mostly(ref, anything), { maxLength: 3 }),
        },
        { requiredKeys: ["type", "results", "want", "received"] },
      ),
      fc.option(anything, { freq: 8 }),
    )
    .map(([f, extra]) => (extra === null ? f : { ...f, extra }));

/** The schema's word on `value`: the message, or undefined when it refuses it. */
function bySchema(value: unknown): unknown {
  const parsed = runnerMessage.safeParse(value);
  return parsed.success ? parsed.data : undefined;
}

describe("the checked path for results frames", () => {
  it("vouches only for what the schema accepts, as the message the schema makes, key order too", () => {
    let vouched = 0;
    fc.assert(
      fc.property(frame(mostly(hotResult, otherResult)), (value) => {
        // Through JSON, as a frame comes (-0 arrives as 0, an infinite double as null).
        const parsed: unknown = JSON.parse(JSON.stringify(value));
        const quick = fastResults(parsed);
        if (quick === undefined) return;
        vouched++;
        const schema = bySchema(parsed);
        expect(schema).toBeDefined();
        expect(JSON.stringify(quick)).toBe(JSON.stringify(schema));
      }),
      { numRuns: 5000 },
    );
    // It is a fast path, not a door that is never open: generated frames it took run in the hundreds.
    expect(vouched).toBeGreaterThan(100);
  });

  it("takes every plain frame of successes the schema accepts", () => {
    const plain = fc.record({
      type: fc.constant("results"),
      results: fc.array(
        fc.record(
          {
            task: fc.string({ minLength: 1, maxLength: 40 }),
            attempt: fc.integer({ min: 1, max: 10 }),
            ok: fc.boolean(),
            output: fc.base64String({ maxLength: 40 }),
            stderr: fc.string({ maxLength: 40 }),
            durationMs: fc.double({ min: 0, max: 1e6, noNaN: true }),
          },
          { requiredKeys: ["task", "attempt", "ok", "durationMs"] },
        ),
        { minLength: 1, maxLength: 20 },
      ),
      want: fc.integer({ min: 0, max: 4096 }),
      received: fc.nat(),
      started: fc.array(
        fc.record({ task: fc.string({ minLength: 1, maxLength: 40 }), attempt: fc.integer({ min: 1, max: 9 }) }),
      ),
    });
    fc.assert(
      fc.property(plain, (value) => {
        const quick = fastResults(JSON.parse(JSON.stringify(value)));
        expect(quick).toBeDefined();
        expect(JSON.stringify(quick)).toBe(JSON.stringify(bySchema(value)));
      }),
      { numRuns: 500 },
    );
  });

  it("leaves the rest to the schema: the decoder's errors are the schema's", () => {
    const frames = [
      `{"type":"results","results":[],"want":1,"received":0}`,
      `{"type":"results","results":[{"task":"","attempt":1,"ok":true,"durationMs":1}],"want":1,"received":0}`,
      `{"type":"results","results":[{"task":"a","attempt":1,"ok":true,"durationMs":1e999}],"want":1,"received":0}`,
      `{"type":"results","results":[{"task":"a","attempt":1,"ok":true,"durationMs":1,"__proto__":{}}],"want":1,"received":0}`,
      `{"type":"results","results":[{"task":"a","attempt":1,"ok":true,"durationMs":1}],"want":4097,"received":0}`,
      `{"type":"results","results":[{"task":"a","attempt":1,"ok":true,"durationMs":1}],"want":1,"received":9007199254740992}`,
      `{"type":"results","results":[{"task":"a","attempt":9007199254740992,"ok":true,"durationMs":1}],"want":1,"received":0}`,
      `{"type":"results","results":[{"task":"a","attempt":1,"ok":true,"durationMs":1}],"want":1,"received":0,"started":[{"task":"b","attempt":1,"at":3}]}`,
    ];
    for (const raw of frames) {
      expect(fastResults(JSON.parse(raw))).toBeUndefined();
      const decoded = decodeRunnerMessage(raw);
      expect(decoded.ok).toBe(false);
      expect(decoded).toEqual({ ok: false, error: expect.stringMatching(/^invalid "results" frame at /) });
    }
    // A frame it takes decodes to what encode() sends back unchanged.
    const good = `{"type":"results","results":[{"task":"a","attempt":1,"ok":true,"output":"e30=","stderr":"","durationMs":2}],"want":3,"received":7,"started":[]}`;
    const decoded = decodeRunnerMessage(good);
    expect(decoded.ok && encode(decoded.message)).toBe(good);
  });
});
