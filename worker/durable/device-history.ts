/**
 * The RunnerPool's history of each device's reports (free memory, CPU load), bounded: at most one
 * sample per runner per half heartbeat is kept (runners report about that often; extra reports
 * are dropped), and at most ten minutes of them, so a device's history has a fixed maximum length
 * however fast its runner sends. The pool stores one JSON array per device and appends to it;
 * `GET /api/runners` reads the arrays as they are. Pure: the pool passes the time in.
 */
import type { DeviceSample } from "../../core/api.js";
import { DEVICE_REPORT } from "../../core/protocol/messages.js";

/** How far back a device's reports are kept. */
export const HISTORY_MS = 10 * 60_000;

/** The period of device reports: half a heartbeat. */
function samplePeriodMs(heartbeatMs: number): number {
  return heartbeatMs / DEVICE_REPORT.perHeartbeat;
}

/**
 * Whether a report arriving at `now` is kept, the last kept one having arrived at `last` (null:
 * none). One may come a little early (DEVICE_REPORT.early of the period): the runner waits the
 * period between reports by its own clock, and the network may deliver one sooner after the one
 * before than it was sent.
 */
export function keepsSample(last: number | null, now: number, heartbeatMs: number): boolean {
  return last === null || now - last >= samplePeriodMs(heartbeatMs) * (1 - DEVICE_REPORT.early);
}

/** The most samples a device's history holds: ten minutes at one per period. */
export function historyCap(heartbeatMs: number): number {
  return Math.ceil(HISTORY_MS / samplePeriodMs(heartbeatMs));
}

/** `history` (oldest first) with `sample` appended, those older than HISTORY_MS dropped, capped. */
export function appendSample(history: DeviceSample[], sample: DeviceSample, heartbeatMs: number): DeviceSample[] {
  const kept = recentSamples(history, sample.at);
  kept.push(sample);
  return kept.slice(-historyCap(heartbeatMs));
}

/** The samples of the last HISTORY_MS before `now`, oldest first. */
export function recentSamples(history: DeviceSample[], now: number): DeviceSample[] {
  const from = history.findIndex((s) => s.at > now - HISTORY_MS);
  return from < 0 ? [] : history.slice(from);
}
