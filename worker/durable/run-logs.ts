/**
 * The whole stderr of a run's attempts (docs/api.md, "Logs"): `log` frames a runner streams while
 * an attempt runs are kept in the `logs` table (rows of at most 64 KiB, at most
 * LOG_LIMITS.attemptBytes per attempt, `log_heads` keeping each log's size, cut and place), and
 * read back from any byte offset. A log that outgrows KEEP_BYTES goes to R2 whole once its attempt
 * ended, and its rows are deleted, so the run's SQLite stays small.
 *
 * When an attempt ended is the state machine's (it sets the attempt's `ended_at` on a result, a
 * loss, a cancel…); rather than teach the machine of logs, the DagRun calls `settle` after every
 * event it applies, which finds open logs of ended attempts with one indexed query (most events
 * find none). A log whose upload failed stays open and is tried again after the next event; one
 * read meanwhile is served from its rows.
 */
import { LOG_LIMITS, type RunnerMessage } from "../../core/protocol/messages.js";
import { logKey } from "../blob-keys.js";
import { ok, refusal, type Answer } from "../errors.js";
import type { SqlStore } from "./sql-store.js";

type LogFrame = Extract<RunnerMessage, { type: "log" }>;

/** Logs up to this size stay in SQLite when their attempt ends; larger ones go to R2. */
const KEEP_BYTES = 8 * 1024;
/** A chunk joins the last row of its log while that row stays within this size. */
const ROW_BYTES = 64 * 1024;

/** Where a log is: `open` (rows, its attempt may run), `rows` (ended, kept small in SQLite), `blob` (in R2). */
type Place = "open" | "rows" | "blob";
/** `bytes`: the contiguous start kept; `stored`: bytes kept, gaps and all; `claimed`: the most the runner said it wrote. */
type Head = { bytes: number; stored: number; claimed: number; place: Place };

/** A log from `offset`: its bytes, or where they are in R2 (the route reads them from there). */
export type LogRead = {
  attempt: number;
  running: boolean;
  /** The log's size in bytes, and how many bytes of the attempt's stderr were cut (null: none). */
  total: number;
  cut: number | null;
  offset: number;
} & ({ bytes: Uint8Array } | { blob: string });

export interface LogsHost {
  sql: SqlStorage;
  store: Pick<SqlStore, "task">;
  blobs: R2Bucket;
  run: string;
  /** `runner` sent frames naming attempts it does not hold (conduct.ts counts them). */
  stray(runner: string, frames: number): Promise<void>;
}

const encoder = new TextEncoder();

export class RunLogs {
  /** Logs being uploaded now, `task#attempt`: a second settle meanwhile leaves them. */
  private readonly saving = new Set<string>();
  /**
   * Whether any log may be open: false once a settle found none, true again when a frame opens
   * one (unknown, so asked, after the object starts). Most runs stream no log, and then an event
   * costs no query here.
   */
  private mayBeOpen = true;

  constructor(private readonly host: LogsHost) {}

  /**
   * A `log` frame from `runner`: kept when it names the attempt leased to that runner, else
   * stray. Frames may arrive out of order, so a chunk is kept by its offset and the log is its
   * contiguous start (`bytes`); what a runner says it wrote beyond that (`claimed`, with
   * `dropped`) is cut. At most LOG_LIMITS.attemptBytes are kept of an attempt, gaps and all.
   */
  async append(runner: string, frame: LogFrame): Promise<void> {
    const { sql, store } = this.host;
    const { task, attempt, offset, chunk } = frame;
    const row = store.task(task);
    if (row?.state !== "leased" || row.runner !== runner || row.attempt !== attempt) return this.host.stray(runner, 1);
    let head = this.head(task, attempt);
    if (!head) {
      head = { bytes: 0, stored: 0, claimed: 0, place: "open" };
      sql.exec(
        `INSERT INTO log_heads (task, attempt, bytes, stored, claimed, place) VALUES (?, ?, 0, 0, 0, 'open')`,
        task,
        attempt,
      );
    }
    this.mayBeOpen = true;
    const size = encoder.encode(chunk).length;
    const room = LOG_LIMITS.attemptBytes - Math.max(head.stored, offset);
    // A chunk is kept past the log's end (frames of one socket may be handled out of order), never
    // over a chunk kept already, and not once the log left for R2 (an attempt resumed after that:
    // its log is cut there). So an open log's rows hold at most 1 MiB, and rows past a gap that
    // never closed go when its attempt ends (`settle`).
    const near = offset >= head.bytes;
    const text = utf8Prefix(chunk, room);
    const kept = encoder.encode(text).length;
    if (size > 0 && near && room > 0 && head.place !== "blob" && !this.overlaps(task, attempt, offset, kept)) {
      // A chunk that continues the log joins its last row while that stays small.
      const last =
        offset === head.bytes
          ? sql
              .exec<{ offset: number; size: number }>(
                `SELECT offset, size FROM logs WHERE task = ? AND attempt = ? AND offset + size = ?`,
                task,
                attempt,
                offset,
              )
              .toArray()[0]
          : undefined;
      let written = 0;
      if (last && last.size + kept <= ROW_BYTES)
        written = sql.exec(
          `UPDATE logs SET text = text || ?, size = size + ? WHERE task = ? AND attempt = ? AND offset = ?`,
          text,
          kept,
          task,
          attempt,
          last.offset,
        ).rowsWritten;
      else
        written = sql.exec(
          `INSERT OR IGNORE INTO logs (task, attempt, offset, size, text) VALUES (?, ?, ?, ?, ?)`,
          task,
          attempt,
          offset,
          kept,
          text,
        ).rowsWritten;
      head = { ...head, stored: head.stored + (written > 0 ? kept : 0), place: "open" };
      if (written > 0) head.bytes = this.contiguous(task, attempt, offset === head.bytes ? offset + kept : head.bytes);
    }
    const claimed = Math.max(head.claimed, offset + size + (frame.dropped ?? 0));
    sql.exec(
      `UPDATE log_heads SET bytes = ?, stored = ?, claimed = ?, place = ? WHERE task = ? AND attempt = ?`,
      head.bytes,
      head.stored,
      claimed,
      head.place,
      task,
      attempt,
    );
  }

  /** Whether bytes [offset, offset + size) of the log are kept already, in part or whole. */
  private overlaps(task: string, attempt: number, offset: number, size: number): boolean {
    const query = `SELECT 1 FROM logs WHERE task = ? AND attempt = ? AND offset < ? AND offset + size > ? LIMIT 1`;
    return this.host.sql.exec(query, task, attempt, offset + size, offset).toArray().length > 0;
  }

  /** Where the log's contiguous start ends, from `from` on: past every row that begins where the last ends. */
  private contiguous(task: string, attempt: number, from: number): number {
    let end = from;
    for (;;) {
      const next = this.host.sql
        .exec<{ size: number }>(
          `SELECT size FROM logs WHERE task = ? AND attempt = ? AND offset = ?`,
          task,
          attempt,
          end,
        )
        .toArray()[0];
      if (!next) return end;
      end += next.size;
    }
  }

  /** Moves the open logs of ended attempts where they stay: small ones in their rows, the rest to R2. */
  async settle(): Promise<void> {
    const { sql, blobs, run } = this.host;
    if (!this.mayBeOpen) return;
    const open = sql
      .exec<{ task: string; attempt: number; bytes: number; ended: number }>(
        `SELECT h.task, h.attempt, h.bytes, a.ended_at IS NOT NULL AS ended FROM log_heads h
         JOIN attempts a ON a.task = h.task AND a.attempt = h.attempt
         WHERE h.place = 'open'`,
      )
      .toArray();
    if (open.length === 0) this.mayBeOpen = false;
    for (const { task, attempt, bytes } of open.filter((log) => log.ended)) {
      const key = `${task}#${attempt}`;
      if (this.saving.has(key)) continue;
      // What lies past a gap that never closed is no part of the log: it goes.
      sql.exec(`DELETE FROM logs WHERE task = ? AND attempt = ? AND offset >= ?`, task, attempt, bytes);
      sql.exec(`UPDATE log_heads SET stored = bytes WHERE task = ? AND attempt = ?`, task, attempt);
      if (bytes <= KEEP_BYTES) {
        sql.exec(`UPDATE log_heads SET place = 'rows' WHERE task = ? AND attempt = ?`, task, attempt);
        continue;
      }
      this.saving.add(key);
      try {
        await blobs.put(logKey(run, task, attempt), this.text(task, attempt, bytes), {
          httpMetadata: { contentType: "text/plain; charset=utf-8" },
        });
        // Unless it took more meanwhile (resumed): then the next settle uploads it again.
        const moved = sql.exec(
          `UPDATE log_heads SET place = 'blob' WHERE task = ? AND attempt = ? AND place = 'open' AND bytes = ?`,
          task,
          attempt,
          bytes,
        ).rowsWritten;
        if (moved > 0) sql.exec(`DELETE FROM logs WHERE task = ? AND attempt = ?`, task, attempt);
      } catch (e) {
        console.error(`run ${run}: saving the log of ${task} attempt ${attempt} to R2`, e);
      } finally {
        this.saving.delete(key);
      }
    }
  }

  /**
   * The log of `task`'s attempt (its latest when not given) from byte `offset`. An attempt that
   * ended without a log frame (its stderr fit its result, or its runner sent none) has its
   * result's stderr tail as its log.
   */
  read(task: string, attempt: number | undefined, offset: number): Answer<LogRead> {
    const { sql, store, run } = this.host;
    const row = store.task(task);
    if (!row) return refusal("not_found", `run ${run} has no task ${task}`);
    const n = attempt ?? row.attempt;
    const a = sql
      .exec<{ ended_at: number | null; stderr: string }>(
        `SELECT ended_at, stderr FROM attempts WHERE task = ? AND attempt = ?`,
        task,
        n,
      )
      .toArray()[0];
    if (!a)
      return refusal(
        "not_found",
        attempt === undefined ? `task ${task} has not run yet` : `task ${task} has no attempt ${attempt}`,
      );
    const running = a.ended_at === null;
    const head = this.head(task, n);
    const cut = head && head.claimed > head.bytes ? head.claimed - head.bytes : null;
    const base = { attempt: n, running, cut, offset };
    if (head?.place === "blob") return ok({ ...base, total: head.bytes, blob: logKey(run, task, n) });
    if (!head) {
      const bytes = encoder.encode(running ? "" : a.stderr);
      return ok({ ...base, total: bytes.length, bytes: bytes.slice(offset) });
    }
    const rows = sql
      .exec<{ offset: number; text: string }>(
        `SELECT offset, text FROM logs WHERE task = ? AND attempt = ? AND offset + size > ? AND offset < ? ORDER BY offset`,
        task,
        n,
        offset,
        head.bytes,
      )
      .toArray();
    const bytes = encoder.encode(rows.map((r) => r.text).join(""));
    return ok({ ...base, total: head.bytes, bytes: rows.length > 0 ? bytes.slice(offset - rows[0]!.offset) : bytes });
  }

  private head(task: string, attempt: number): Head | undefined {
    return this.host.sql
      .exec<Head>(`SELECT bytes, stored, claimed, place FROM log_heads WHERE task = ? AND attempt = ?`, task, attempt)
      .toArray()[0];
  }

  /** The log's contiguous start, `bytes` long. */
  private text(task: string, attempt: number, bytes: number): string {
    return this.host.sql
      .exec<{ text: string }>(
        `SELECT text FROM logs WHERE task = ? AND attempt = ? AND offset < ? ORDER BY offset`,
        task,
        attempt,
        bytes,
      )
      .toArray()
      .map((r) => r.text)
      .join("");
  }
}

/** The longest start of `text` whose UTF-8 takes at most `max` bytes, cut between characters. */
function utf8Prefix(text: string, max: number): string {
  const bytes = encoder.encode(text);
  if (bytes.length <= max) return text;
  let end = Math.max(0, max);
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end--;
  return new TextDecoder().decode(bytes.subarray(0, end));
}
