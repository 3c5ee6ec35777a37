/**
 * Files that several runner processes of one device may write at the same moment (the claim
 * locks of identity.ts, the saved credential and its enroll lock of credential.ts). A file
 * appears with its whole content at once, written aside and then linked or renamed into
 * place, so a process looking at the same moment never reads a half-written one.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from "node:fs";

/** A name beside `file` that no other process writes. */
const aside = (file: string) => `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;

/**
 * Puts a file holding `content` at `file` unless one is there: false when one is (the first
 * process to place it wins). `mode` is set before it appears.
 */
export function place(file: string, content: string, mode = 0o644): boolean {
  const tmp = aside(file);
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode); // the umask may have taken bits the caller asked for
  try {
    linkSync(tmp, file);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    return false;
  } finally {
    unlinkSync(tmp);
  }
}

/** Replaces whatever is at `file` with `content`, at once (write aside, rename over). */
export function replace(file: string, content: string, mode = 0o644): void {
  const tmp = aside(file);
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  try {
    renameSync(tmp, file);
  } catch (e) {
    unlinkSync(tmp);
    throw e;
  }
}

/**
 * Creates `lock` holding `pid`, or takes it over from a process that no longer runs: true when
 * `pid` holds it now.
 */
export function tryLock(lock: string, pid: number): boolean {
  if (place(lock, String(pid))) return true;
  const holder = lockHolder(lock);
  if (holder === undefined) return false; // released between our two looks: leave it to the next try
  if (holder === pid) return true;
  if (alive(holder)) return false;
  try {
    unlinkSync(lock);
  } catch {
    return false; // another process is taking it over
  }
  return place(lock, String(pid));
}

/** Removes `lock` if `pid` still holds it. */
export function unlock(lock: string, pid: number): void {
  try {
    if (lockHolder(lock) === pid) unlinkSync(lock);
  } catch {
    // already gone
  }
}

/** The process holding `lock` (a file with its pid), or undefined when there is none. */
export function lockHolder(lock: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(lock, "utf8").trim();
  } catch {
    return undefined;
  }
  const pid = Number(text);
  // A file that names no process holds nothing: pid 0 lets it be taken over.
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

/** Whether a process with this id runs (one of another user counts). */
function alive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
