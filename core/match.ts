/**
 * Capability matching: whether a runner can take a task's `requires:` (memory, cores, labels,
 * arch, platform), and in words why no connected runner can. Pure; used by the run state
 * machine (which tasks a runner is given), the RunnerPool (which runners are told to join) and
 * the run view (`waiting` tasks and their reason).
 */
import type { Requirements } from "./dag/plan.js";
import { formatSize } from "./units.js";
import type { RunnerInfo } from "./protocol/messages.js";

/** What a runner offers, from its hello. */
export type Capabilities = Pick<RunnerInfo, "memory" | "cores" | "labels" | "arch" | "platform">;

/** Work a run has ready for runners that meet `requires` (null: any runner), best `priority` first. */
export interface DemandClass {
  requires: Requirements | null;
  priority: number;
}

/** Names the usual spellings of an architecture the way Node's `os.arch()` does. */
const ARCH_ALIASES: Record<string, string> = {
  amd64: "x64",
  x86_64: "x64",
  aarch64: "arm64",
  armv7l: "arm",
  i386: "ia32",
  x86: "ia32",
};

function normalizeArch(arch: string): string {
  const lower = arch.toLowerCase();
  return ARCH_ALIASES[lower] ?? lower;
}

/** The requirements `caps` does not meet, in words ("label gpu", "4 GiB of memory"); empty when it meets them all. */
export function unmet(requires: Requirements | null | undefined, caps: Capabilities): string[] {
  if (!requires) return [];
  const missing: string[] = [];
  for (const label of requires.labels ?? []) if (!caps.labels.includes(label)) missing.push(`label ${label}`);
  if (requires.memory !== undefined && caps.memory < requires.memory)
    missing.push(`${formatSize(requires.memory)} of memory`);
  if (requires.cores !== undefined && caps.cores < requires.cores) missing.push(`${requires.cores} cores`);
  if (requires.arch !== undefined && normalizeArch(caps.arch) !== normalizeArch(requires.arch))
    missing.push(`arch ${requires.arch}`);
  if (requires.platform !== undefined && caps.platform.toLowerCase() !== requires.platform.toLowerCase())
    missing.push(`platform ${requires.platform}`);
  return missing;
}

export function meets(requires: Requirements | null | undefined, caps: Capabilities): boolean {
  return unmet(requires, caps).length === 0;
}

/**
 * Why no runner in `runners` can take work that needs `requires`, or null when one can. Names
 * what no connected runner has ("no runner with label gpu"), or, when each requirement is met
 * by some runner but never all by one, the whole set.
 */
export function whyWaiting(requires: Requirements | null | undefined, runners: readonly Capabilities[]): string | null {
  if (runners.length === 0) return "no runner connected";
  const misses = runners.map((caps) => unmet(requires, caps));
  if (misses.some((m) => m.length === 0)) return null;
  const nobody = misses[0]!.filter((need) => misses.every((m) => m.includes(need)));
  if (nobody.length > 0) return `no runner with ${nobody.join(", ")}`;
  const nothing = { memory: 0, cores: 0, labels: [], arch: "", platform: "" };
  return `no single runner has all of: ${unmet(requires, nothing).join(", ")}`;
}
