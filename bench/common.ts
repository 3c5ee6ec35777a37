/**
 * What the benchmark scenarios share: medians, the printed list of runs, waiting for runners.
 */
import type { Client } from "../cli/client.js";

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
/** The runs of a measurement, as printed: "460, 579, 681". */
export const runs = (xs: number[], digits: number) => xs.map((x) => x.toFixed(digits)).join(", ");

/** Resolves once the connected runners' names satisfy `check`. */
export async function pollRunners(client: Client, check: (names: string[]) => boolean): Promise<void> {
  for (;;) {
    const { runners } = await client.json<{ runners: { name: string }[] }>("/api/runners");
    if (check(runners.map((r) => r.name))) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
