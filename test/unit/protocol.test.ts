// The wire schema: golden frames that freeze the format (long ones split across lines, byte for
// byte the same), and decoding of bad frames into clear errors instead of exceptions.
import { describe, expect, it } from "vitest";
import { decodeCoordinatorMessage, decodeRunnerMessage, encode } from "../../core/protocol/codec";
import { PROTOCOL_VERSION } from "../../core/protocol/messages";

const GOLDEN_RUNNER = [
  `{"type":"hello","protocol":1,"runner":{"id":"pc-1a2b","name":"pc","platform":"linux","arch":"x64","cores":8,` +
    `"memory":17179869184,"freeMemory":8589934592,"slots":4,"labels":["fast"],"version":"0.1.0"},"want":4,` +
    `"holding":[{"task":"greet[1]","attempt":2}]}`,
  `{"type":"status","free":2,"runs":["${"a".repeat(64)}"]}`,
  `{"type":"status","free":0,"runs":[],"device":{"freeMemory":4294967296,"load":37.5}}`,
  `{"type":"status","free":1,"slots":3,"runs":[]}`,
  `{"type":"want","want":3,"received":12,"started":[]}`,
  `{"type":"want","want":0,"received":14,"started":[{"task":"greet[3]","attempt":1}]}`,
  `{"type":"started","tasks":[{"task":"greet[4]","attempt":1}]}`,
  `{"type":"results","results":[{"task":"greet[2]","attempt":1,"ok":true,"output":"eyJhIjoxfQ==","stderr":"",` +
    `"durationMs":12.5}],"want":1,"received":5,"started":[]}`,
  `{"type":"results","results":[{"task":"big","attempt":1,"ok":true,` +
    `"outputRef":{"sha256":"${"d".repeat(64)}","size":5242880},"stderr":"","durationMs":40}],"want":1,"received":6,"started":[]}`,
  `{"type":"results","results":[{"task":"x","attempt":2,"ok":false,"stderr":"boom",` +
    `"failure":{"kind":"exit","message":"exited with code 3","retryable":true,"exitCode":3},"durationMs":3}],` +
    `"want":0,"received":9,"started":[{"task":"y","attempt":1}]}`,
  `{"type":"reject","tasks":[{"task":"x","attempt":2}]}`,
];

const GOLDEN_COORDINATOR = [
  `{"type":"welcome","protocol":1,"run":"${"b".repeat(64)}","heartbeatMs":15000}`,
  `{"type":"cancel","tasks":[{"task":"greet[0]","attempt":1}]}`,
  `{"type":"steal","count":4}`,
  `{"type":"join","run":"${"b".repeat(64)}","priority":5}`,
  `{"type":"tasks","tasks":[{"task":"greet[0]","attempt":1,"module":"${"c".repeat(64)}","args":["Alice"],` +
    `"env":{},"stdin":"{}","refs":[],"timeoutMs":30000,"memoryBytes":67108864,"maxOutputBytes":16777216,` +
    `"inlineOutputBytes":262144}],"backlog":2}`,
  `{"type":"tasks","tasks":[{"task":"b","attempt":1,"module":"${"c".repeat(64)}","args":[],"env":{},` +
    `"stdin":"{\\"task\\":\\"b\\",\\"inputs\\":{\\"a\\":}}","after":{"task":"a","attempt":2,"at":26},"refs":[],` +
    `"timeoutMs":30000,"memoryBytes":67108864,"maxOutputBytes":16777216,"inlineOutputBytes":262144}],"backlog":0}`,
  `{"type":"finished","status":"succeeded"}`,
  `{"type":"error","message":"bad frame","fatal":false}`,
];

describe("wire format", () => {
  it("is version 4 (assignments may be sent ahead of an attempt, `after`; 3: `started` marks and `steal`)", () =>
    expect(PROTOCOL_VERSION).toBe(4));

  it("decodes and re-encodes the golden runner frames unchanged", () => {
    for (const frame of GOLDEN_RUNNER) {
      const decoded = decodeRunnerMessage(frame);
      expect(decoded.ok, frame).toBe(true);
      if (decoded.ok) expect(encode(decoded.message)).toBe(frame);
    }
  });

  it("decodes and re-encodes the golden coordinator frames unchanged", () => {
    for (const frame of GOLDEN_COORDINATOR) {
      const decoded = decodeCoordinatorMessage(frame);
      expect(decoded.ok, frame).toBe(true);
      if (decoded.ok) expect(encode(decoded.message)).toBe(frame);
    }
  });

  it("turns bad frames into errors that say what is wrong", () => {
    const cases: [string | Uint8Array, RegExp][] = [
      ["{", /not JSON/],
      [`{"type":"dance"}`, /invalid "dance" frame/],
      [`{"type":"want","want":-1,"received":0}`, /invalid "want" frame at want/],
      [`{"type":"want","want":1,"received":0,"extra":true}`, /invalid "want" frame/],
      [new Uint8Array([1, 2]), /binary frames/],
      [`{"type":"results","results":[],"want":1,"received":0}`, /invalid "results" frame at results/],
    ];
    for (const [raw, message] of cases) {
      const decoded = decodeRunnerMessage(raw);
      expect(decoded.ok).toBe(false);
      if (!decoded.ok) expect(decoded.error).toMatch(message);
    }
  });
});
