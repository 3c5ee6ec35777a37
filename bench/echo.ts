/**
 * The echo round trip (docs/benchmarks.md): the floor under a chain's hop. One socket to the
 * BenchEcho object (worker/durable/bench-echo.ts) through the same path a runner's socket to its
 * run takes; frames the size of a one-result `results` frame are sent one at a time, each after
 * the answer to the one before, and each round trip is timed by the client. The coordinator must
 * run with the var BENCH_ECHO=1.
 */
import WebSocket from "ws";

/** About what a runner sends for one finished no-op task. */
const frame = (i: number) =>
  JSON.stringify({ type: "results", results: [{ task: `t${i}`, attempt: 1, ok: true, output: "bnVsbA==", ms: 0 }] });

/** Round trips of `frames` sequential frames, in milliseconds. */
export async function echoRoundTrips(coordinator: URL, token: string, frames: number): Promise<number[]> {
  const url = new URL("/api/bench/echo", coordinator);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  // As the runner does: no permessage-deflate.
  const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${token}` }, perMessageDeflate: false });
  let answered: (() => void) | undefined;
  let failed: ((e: Error) => void) | undefined;
  const ended = (why: string) => failed?.(new Error(`the echo socket ${why}`));
  ws.on("message", () => answered?.());
  ws.on("close", (code, reason) => ended(`closed: ${code} ${reason.toString()}`));
  ws.on("error", (e) => ended(`failed: ${e.message}`));
  await new Promise<void>((resolve, reject) => {
    ws.once("open", () => resolve());
    ws.once("error", reject);
    ws.once("unexpected-response", (_req, res) =>
      reject(new Error(`GET /api/bench/echo answered HTTP ${res.statusCode} (is BENCH_ECHO=1 set?)`)),
    );
  });
  const times: number[] = [];
  try {
    for (let i = 0; i < frames; i++) {
      const t0 = performance.now();
      await new Promise<void>((resolve, reject) => {
        answered = resolve;
        failed = reject;
        ws.send(frame(i));
      });
      times.push(performance.now() - t0);
    }
  } finally {
    failed = undefined;
    ws.close();
  }
  return times;
}
