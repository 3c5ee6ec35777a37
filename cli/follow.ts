/**
 * Following a run to its end in the CLI, for `distro submit --watch|--wait` and `distro watch`:
 * the live progress display over the watch socket (re-attached across a dropped socket or a
 * restarted coordinator, each outage told once on standard error), then the result: what failed
 * and why, or with `wait` the final tasks' outputs.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { OUTPUT_EXTENSIONS } from "../core/abi.js";
import type { RunSummary, RunView } from "../core/api.js";
import { formatDuration } from "../core/units.js";
import type { Client, LinkEvent } from "./client.js";
import type { Io } from "./command.js";
import { failedLines } from "./format.js";
import { Progress } from "./progress.js";
import { safe, safeText } from "./terminal.js";

export interface FollowRunOptions {
  /** `watch`: progress, then the result; `wait`: also the final tasks' outputs. */
  mode: "watch" | "wait";
  /** Print only the final summary, as JSON. */
  json: boolean;
  /** With `wait`: write the outputs into this folder instead of printing them. */
  out?: string | undefined;
}

/** Follows the run `id` (a full id) to its end and prints the result: exit code 0 if it succeeded, 1 if not. */
export async function followRun(client: Client, id: string, opts: FollowRunOptions, io: Io): Promise<number> {
  const progress = new Progress({
    tty: io.tty !== undefined,
    columns: io.tty?.columns,
    write: (text) => io.write(new TextEncoder().encode(text)),
  });
  const onLink = (event: LinkEvent) => {
    progress.end(); // a progress line redrawn in place is closed before the note
    io.err(
      event.type === "lost"
        ? `distro: lost the coordinator (${safe(event.reason)}); reconnecting…`
        : `distro: reconnected after ${formatDuration(event.afterMs)}`,
    );
  };
  const final = await client.follow(
    id,
    (r) => {
      if (!opts.json) progress.update(r);
    },
    { onLink },
  );
  progress.end();
  if (opts.json) io.out(JSON.stringify(final, null, 2));
  else if (opts.mode === "wait" || final.status !== "succeeded")
    await printResult(client, final, opts.mode === "wait", opts.out, io);
  else io.out(`run ${safe(final.id)} succeeded`);
  return final.status === "succeeded" ? 0 : 1;
}

/** Prints what failed and why; with `outputs`, prints (or writes into `out`) the outputs of the run's final tasks. */
async function printResult(
  client: Client,
  run: RunSummary,
  outputs: boolean,
  out: string | undefined,
  io: Io,
): Promise<void> {
  if (run.status !== "succeeded") {
    failedLines(await client.json<RunView>(`/api/dags/${run.id}?state=failed&limit=10`)).forEach((line) =>
      io.err(line),
    );
    io.out(`run ${safe(run.id)} ${safe(run.status)}`);
    return;
  }
  if (!outputs) return;
  const view = await client.run(run.id);
  const used = new Set((view.nodes ?? []).flatMap((n) => n.deps));
  const sinks = new Set((view.nodes ?? []).filter((n) => !used.has(n.id)).map((n) => n.id));
  if (out) mkdirSync(out, { recursive: true });
  const finals = (view.tasks ?? []).filter((t) => sinks.has(t.node));
  for (const t of out ? finals : finals.slice(0, 10)) {
    const { bytes, type } = await client.outputWithType(run.id, t.id);
    if (out) {
      const extension = OUTPUT_EXTENSIONS[type as keyof typeof OUTPUT_EXTENSIONS] ?? ".bin";
      const file = join(out, `${t.id.replace(/[^A-Za-z0-9_.-]/g, "_")}${extension}`);
      writeFileSync(file, bytes);
      io.out(`${safe(t.id)}: wrote ${bytes.length} bytes (${safe(type)}) to ${safe(file)}`);
    } else if (type === "application/json") {
      const text = new TextDecoder().decode(bytes);
      io.out(
        `${safe(t.id)}: ${safeText(text.length > 2000 ? `${text.slice(0, 2000)}… (${bytes.length} bytes)` : text)}`,
      );
    } else {
      const save = `distro output ${safe(run.id)} ${safe(t.id)} -o FILE`;
      io.out(`${safe(t.id)}: ${bytes.length} bytes of ${safe(type)} (save it: ${save})`);
    }
  }
  io.out(`run ${safe(run.id)} succeeded`);
}
