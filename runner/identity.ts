/**
 * Who this runner is to the coordinator. The device id is made once (host name and random
 * bits) and kept in the config dir, so a restarted runner is the same device. Each runner
 * process on the device claims a numbered lock file there: the first is `<device>`, a second
 * one running beside it `<device>.2`, and so on; a claim whose process is gone is taken over.
 */
import { randomBytes } from "node:crypto";
import { linkSync, mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** How many runner processes one device may run side by side. */
const MAX_PROCESSES = 64;

/** The device id stored in `dir` (created on first use). */
export function deviceId(dir: string, name: string): string {
  const file = join(dir, "device-id");
  try {
    const id = readFileSync(file, "utf8").trim();
    if (/^[A-Za-z0-9_-]{1,100}$/.test(id)) return id;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  mkdirSync(dir, { recursive: true });
  const id = `${name.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 48)}-${randomBytes(4).toString("hex")}`;
  // Two processes starting at once on an empty dir: the first to place the file names the device.
  return place(file, `${id}\n`) ? id : readFileSync(file, "utf8").trim();
}

/**
 * Claims a runner id on this device for this process until it exits: `<device>` for the first
 * process, `<device>.<k>` for the k-th one running at the same time.
 */
export function claimRunnerId(dir: string, device: string, pid = process.pid): { id: string; release: () => void } {
  for (let k = 1; k <= MAX_PROCESSES; k++) {
    const lock = join(dir, `runner-${k}.pid`);
    if (!tryLock(lock, pid)) continue;
    const release = () => {
      try {
        if (readFileSync(lock, "utf8").trim() === String(pid)) unlinkSync(lock);
      } catch {
        // already gone
      }
    };
    process.once("exit", release);
    return { id: k === 1 ? device : `${device}.${k}`, release };
  }
  throw new Error(`${MAX_PROCESSES} runner processes already run on this device (lock files in ${dir})`);
}

/**
 * Creates `lock` holding `pid`, or takes it over from a process that no longer runs. The file
 * appears with its content at once (written aside, then hard-linked into place), so a process
 * looking at the same moment never reads an empty claim and takes it for a stale one.
 */
function tryLock(lock: string, pid: number): boolean {
  if (place(lock, String(pid))) return true;
  let holder: number;
  try {
    holder = Number(readFileSync(lock, "utf8").trim());
  } catch {
    return false; // released between our two looks: leave it to the next claim
  }
  if (holder === pid) return true;
  if (Number.isInteger(holder) && holder > 0 && alive(holder)) return false;
  try {
    unlinkSync(lock);
  } catch {
    return false; // another process is taking it over
  }
  return place(lock, String(pid));
}

/** Puts a file holding `content` at `file` unless one is there: false when one is. */
function place(file: string, content: string): boolean {
  const aside = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  writeFileSync(aside, content);
  try {
    linkSync(aside, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    return false;
  } finally {
    unlinkSync(aside);
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
