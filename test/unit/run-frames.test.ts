// A runner's frames on a run socket (worker/run-host/run-frames.ts): hello attaches with the
// runner's capabilities, want/results/reject become machine events, a status frame gets an error
// back, and a result whose output blob never reached storage becomes a retryable failure.
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, type RunnerMessage } from "../../core/protocol/messages";
import { attachEvent, frameEvent } from "../../worker/run-host/run-frames";
import { ok } from "../helpers/run-fixtures";

const runner = {
  id: "r1",
  name: "one",
  platform: "linux",
  arch: "x64",
  cores: 4,
  memory: 2 ** 30,
  freeMemory: 2 ** 29,
  slots: 2,
  labels: ["gpu"],
  version: "test",
};

const noBlobs = () => Promise.resolve(null);

describe("run frames", () => {
  it("attaches a runner from its hello, with what it offers, its want as said and its cool-down", () => {
    const hello = { type: "hello", protocol: PROTOCOL_VERSION, runner, want: 2, holding: [{ task: "a", attempt: 1 }] };
    const attach = {
      type: "attach",
      runner: "r1",
      name: "one",
      want: 2,
      holding: [{ task: "a", attempt: 1 }],
      caps: { memory: 2 ** 30, cores: 4, labels: ["gpu"], arch: "x64", platform: "linux" },
      cooledUntil: null,
      slots: runner.slots,
    };
    expect(attachEvent(hello as Extract<RunnerMessage, { type: "hello" }>, null)).toEqual(attach);
    const greedy = { ...hello, want: 4096 } as Extract<RunnerMessage, { type: "hello" }>;
    // Taken as said: the machine bounds what a runner holds (maxHeld), whatever it asks for.
    expect(attachEvent(greedy, 99)).toEqual({ ...attach, want: 4096, cooledUntil: 99 });
  });

  it("turns want and reject into events, and answers a status frame with an error", async () => {
    const started = [{ task: "b", attempt: 1 }];
    expect(await frameEvent("r1", { type: "want", want: 3, received: 1, started: [] }, noBlobs)).toEqual({
      event: { type: "want", runner: "r1", want: 3, received: 1, started: [] },
    });
    expect(await frameEvent("r1", { type: "want", want: 4096, received: 1, started }, noBlobs)).toEqual({
      event: { type: "want", runner: "r1", want: 4096, received: 1, started },
    });
    expect(await frameEvent("r1", { type: "started", tasks: started }, noBlobs)).toEqual({
      event: { type: "started", runner: "r1", tasks: started },
    });
    expect(await frameEvent("r1", { type: "reject", tasks: [{ task: "a", attempt: 2 }] }, noBlobs)).toEqual({
      event: { type: "reject", runner: "r1", tasks: [{ task: "a", attempt: 2 }] },
    });
    const status = { type: "status", free: 1, runs: [] } as unknown as Extract<RunnerMessage, { type: "status" }>;
    expect(await frameEvent("r1", status, noBlobs)).toEqual({
      reply: { type: "error", message: `"status" frames go to the pool socket, not a run socket`, fatal: false },
    });
  });

  it("fails a result whose output blob is missing or of another size, retryably; keeps one that is there", async () => {
    const sha = (c: string) => c.repeat(64);
    const sizes: Record<string, number> = { [sha("a")]: 10, [sha("b")]: 11 };
    const blobSize = (sha256: string) => Promise.resolve(sizes[sha256] ?? null);
    const withRef = (task: string, sha256: string) => ({
      ...ok({ task, attempt: 1 }, ""),
      outputRef: { sha256, size: 10 },
    });
    const results = [
      withRef("kept", sha("a")),
      withRef("short", sha("b")),
      withRef("gone", sha("c")),
      ok({ task: "inline", attempt: 1 }, "x"),
    ];
    const next = await frameEvent("r1", { type: "results", results, want: 1, received: 4, started: [] }, blobSize);
    if (!("event" in next) || next.event.type !== "results") throw new Error("expected a results event");
    const [kept, short, gone, inline] = next.event.results;
    expect(kept).toEqual(results[0]);
    expect(inline).toEqual(results[3]);
    for (const failed of [short, gone]) {
      expect(failed).toMatchObject({ ok: false, outputRef: undefined, failure: { kind: "output", retryable: true } });
    }
    expect(gone!.failure!.message).toBe(`the output blob sha256:${sha("c")} (10 bytes) was not uploaded`);
  });
});
