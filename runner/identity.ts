/**
 * Which runner of its device this process is. The device id is the coordinator's (it comes
 * with the credential, credential.ts); each runner process on the device claims a numbered lock
 * file in the config dir: the first is `<device>`, a second one running beside it `<device>.2`,
 * and so on up to 16, as many sockets as the coordinator takes from one device. A claim whose
 * process is gone is taken over, so a restarted runner gets its id back.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { tryLock, unlock } from "./files.js";
import type { LinkAuth } from "./link.js";

/** How many runner processes one device may run side by side (the coordinator's limit too). */
const MAX_PROCESSES = 16;

/** The runner id of the k-th process of `device`. */
export const runnerIdOf = (device: string, k: number): string => (k === 1 ? device : `${device}.${k}`);

/**
 * Claims a runner id on this device for this process until it exits: `<device>` for the first
 * process, `<device>.<k>` for the k-th one running at the same time. `k` stays this process's
 * when the device id changes (enrolled again): its id is then runnerIdOf(new device, k).
 */
export function claimRunnerId(
  dir: string,
  device: string,
  pid = process.pid,
): { id: string; k: number; release: () => void } {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (let k = 1; k <= MAX_PROCESSES; k++) {
    const lock = join(dir, `runner-${k}.pid`);
    if (!tryLock(lock, pid)) continue;
    const release = () => unlock(lock, pid);
    process.once("exit", release);
    return { id: runnerIdOf(device, k), k, release };
  }
  throw new Error(`${MAX_PROCESSES} runner processes already run on this device (lock files in ${dir})`);
}

/**
 * Who this runner is to the coordinator now: the device's credential (renewed when the
 * coordinator forgot it, auth.ts) and this process's runner id for that device. The links ask
 * at each connect, so a device enrolled anew says hello with its new id.
 */
export interface RunnerIdentity extends LinkAuth {
  runnerId(): string;
  /** The coordinator revoked the device (`detail` says how): returns the line to end with. */
  revoked(detail: string): string;
}
