/**
 * RunnerPool: presence and matchmaking for every connected runner, one object for the whole
 * coordinator. Runners keep a socket here and report their idle slots; runs tell the pool when
 * they have ready work nobody has taken (`demand`, by what it requires and its priority); the
 * pool tells runners that qualify to join such runs: idle ones, and busy ones when the run
 * outranks every run they work on (they give it their next free slot). Tasks and results never
 * pass through here, so the pool's load grows with the number of runners, not of tasks.
 *
 * It also keeps each device's recent reports (device-history.ts: bounded, appended to as they
 * come) for `GET /api/runners`, cheap totals for `/metrics`, and the count of sockets closed for
 * their rate limit (its own, and those the DagRuns report).
 *
 * It holds each device to its limits (docs/security.md): the slots a device claims count up to
 * MAX_DEVICE_SLOTS, all its processes together; a device whose attempts the runs report lost too
 * often is cooled down (device-limits.ts): it hears of no run, and the runs it is in lease it nothing
 * new, until the cool-down ends.
 */
import type { RunnerView } from "../../core/api.js";
import { DurableObject } from "cloudflare:workers";
import { deviceLimits, heartbeatMs, socketLimits, stallRepairMs, type Env } from "../env.js";
import {
  CLOSE,
  deviceOfRunner,
  PROTOCOL_VERSION,
  type CoordinatorMessage,
  type RunnerInfo,
} from "../../core/protocol/messages.js";
import { FRESH, recordLosses, type CoolState, type DeviceLimits } from "./device-limits.js";
import { whyWaiting, type DemandClass } from "../../core/match.js";
import { joinsOnDemand, matchFor, nextStallCheck, stalls, type PoolDemand, type PoolRunner } from "./matchmaking.js";
import { appendSample, HISTORY_MS, keepsSample, recentSamples } from "./device-history.js";
import { SocketMeters, type SocketKind } from "./meter.js";
import {
  acceptRunnerSocket,
  answerHeartbeats,
  closeDevice,
  connectedDevices,
  lastSocketOf,
  receiveFrame,
  runnerOf,
  runnerSockets,
  send,
  silentSockets,
  socketsOf,
} from "./sockets.js";
import type { DeviceSample } from "../../core/api.js";
import type { PoolTotals, RunnerPoolRpc } from "../rpc.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runners (id TEXT PRIMARY KEY, info TEXT NOT NULL, free INTEGER NOT NULL,
  runs TEXT NOT NULL, connected_at INTEGER NOT NULL, last_seen INTEGER NOT NULL, load REAL);
CREATE TABLE IF NOT EXISTS demands (run TEXT PRIMARY KEY, classes TEXT NOT NULL, since INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS history (runner TEXT PRIMARY KEY, samples TEXT NOT NULL, last_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cooldowns (device TEXT PRIMARY KEY, state TEXT NOT NULL, until INTEGER);
CREATE TABLE IF NOT EXISTS idle_slots (runner TEXT PRIMARY KEY, free INTEGER NOT NULL, since INTEGER NOT NULL);
DROP TABLE IF EXISTS samples;
DROP TABLE IF EXISTS idle;
`;

/** A runner's current load and its device's kept reports (JSON), as `list()` reads them. */
type HistoryColumns = { load: number | null; samples: string | null };

export class RunnerPool extends DurableObject<Env> implements RunnerPoolRpc {
  private readonly sql: SqlStorage;
  private readonly heartbeatMs: number;
  private readonly meters: SocketMeters<WebSocket>;
  private readonly limits: DeviceLimits;
  /** Counted in memory: like any counter of a process, they start again from zero with the object. */
  private samplesDropped = 0;
  private cooldownsStarted = 0;
  private strayFrames = 0;
  private stallRepairs = 0;
  /** Stalls repaired and logged ("runner run"), until the runner is busy or the run's demand goes. */
  private readonly repaired = new Set<string>();
  private readonly stallMs: number;
  /** The alarm this object last set (null: none, or not known since it started). */
  private alarmAt: number | null = null;
  /** Whether some run has demand (undefined: not known since the last change). */
  private anyDemand: boolean | undefined;
  /** Each runner's idle slots as its row in `idle_slots` has them (0: no row), as far as this object knows. */
  private readonly idleKnown = new Map<string, number>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.heartbeatMs = heartbeatMs(env);
    this.meters = new SocketMeters(socketLimits(env));
    this.limits = deviceLimits(env);
    this.stallMs = stallRepairMs(env);
    this.sql.exec(SCHEMA);
    answerHeartbeats(ctx);
    // Rows of runners whose sockets did not survive a restart are stale.
    const live = new Set(runnerSockets(ctx).map(runnerOf));
    for (const { id } of this.sql.exec<{ id: string }>(`SELECT id FROM runners`).toArray()) {
      if (!live.has(id)) this.forget(id);
    }
  }

  /** A run reports the ready work no attached runner has taken, by class; none withdraws its demand. */
  demand(run: string, classes: DemandClass[]): void {
    const before = this.demands().find((d) => d.run === run)?.classes;
    if (classes.length === 0) this.sql.exec(`DELETE FROM demands WHERE run = ?`, run);
    else
      this.sql.exec(
        `INSERT INTO demands (run, classes, since) VALUES (?, ?, ?)
         ON CONFLICT (run) DO UPDATE SET classes = excluded.classes`,
        run,
        JSON.stringify(classes),
        Date.now(),
      );
    this.anyDemand = undefined;
    const cooled = new Set(this.cooled().keys());
    for (const join of joinsOnDemand(run, classes, this.runnerRows(), this.demands(), cooled, before))
      this.sendTo(join.runner, { type: "join", run: join.run, priority: join.priority });
    if (classes.length > 0) this.watchStalls(Date.now());
    else for (const key of this.repaired) if (key.endsWith(` ${run}`)) this.repaired.delete(key);
  }

  /**
   * Self-repair, the second line behind the joins and the runs' frames: a runner idle for
   * STALL_REPAIR_MS beside a run with ready work it qualifies for, which the run says it gets
   * nothing from (no credit there, none of its attempts), is pointed at it again (a lost grant
   * costs a join); each stall is logged once with both ids and counted for /metrics.
   */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    const now = Date.now();
    const cooled = new Set(this.cooled(now).keys());
    const idle = this.sql.exec<{ runner: string; since: number }>(`SELECT runner, since FROM idle_slots`).toArray();
    const since = new Map(idle.map((r) => [r.runner, r.since]));
    const runners = this.runnerRows()
      .filter((r) => since.has(r.id))
      .map((r) => ({ ...r, since: since.get(r.id)! }));
    const demands = this.sql
      .exec<{ run: string; classes: string; since: number }>(`SELECT run, classes, since FROM demands ORDER BY since`)
      .toArray()
      .map((d) => ({ run: d.run, classes: JSON.parse(d.classes) as DemandClass[], since: d.since }));
    for (const join of stalls(runners, demands, cooled, now, this.stallMs)) {
      // Idle beside demand is not yet a stall: a busy run keeps its runners' slots in flight.
      const run = this.env.DAG_RUN.get(this.env.DAG_RUN.idFromString(join.run));
      const starved = await run.starved(join.runner, since.get(join.runner)!).catch((e: unknown) => {
        console.error(`asking run ${join.run} whether runner ${join.runner} is starved`, e);
        return false;
      });
      if (!starved) continue;
      this.sendTo(join.runner, { type: "join", run: join.run, priority: join.priority });
      const key = `${join.runner} ${join.run}`;
      if (this.repaired.has(key)) continue;
      this.repaired.add(key);
      this.stallRepairs++;
      const idleMs = now - since.get(join.runner)!;
      console.warn(
        `stall repaired: runner ${join.runner} idle ${idleMs} ms beside run ${join.run}; pointed at it again`,
      );
    }
    const next = nextStallCheck(runners, demands, cooled, now, this.stallMs);
    if (next !== null && (this.alarmAt === null || this.alarmAt <= now || next < this.alarmAt)) {
      this.alarmAt = next;
      await this.ctx.storage.setAlarm(next);
    }
  }

  /**
   * Arms the alarm while some idle runner (or the one, `only`, whose status just came) qualifies
   * for some run's demand: it may become a stall.
   */
  private watchStalls(now: number, only?: string): void {
    // The alarm set looks at every runner when it fires, and sets itself again while it must.
    if (this.alarmAt !== null && this.alarmAt > now) return;
    // Status frames come often; with no run waiting for runners there is nothing to watch.
    this.anyDemand ??= this.sql.exec<{ n: number }>(`SELECT COUNT(*) AS n FROM demands`).one().n > 0;
    if (!this.anyDemand) return;
    const idle = new Set(
      only !== undefined
        ? [only]
        : this.sql
            .exec<{ runner: string }>(`SELECT runner FROM idle_slots`)
            .toArray()
            .map((r) => r.runner),
    );
    if (idle.size === 0) return;
    const demands = this.demands();
    const cooled = new Set(this.cooled(now).keys());
    const rows = this.runnerRows(only);
    const watched = rows.some((r) => idle.has(r.id) && matchFor({ ...r, runs: [] }, demands, cooled));
    if (!watched) return;
    const at = now + this.stallMs;
    this.alarmAt = at;
    void this.ctx.storage.setAlarm(at);
  }

  /** Why each class of work has no connected runner to take it (null: some runner can). */
  waiting(classes: DemandClass[]): (string | null)[] {
    const runners = this.runnerRows().map((r) => r.info);
    return classes.map((c) => whyWaiting(c.requires, runners));
  }

  /** Connected runners with their device report, load and history; silent ones are dropped first. */
  list(): RunnerView[] {
    const now = Date.now();
    this.dropSilent(now);
    const cooled = this.cooled(now);
    const capLeft = new Map<string, number>();
    const pinged = new Map(
      runnerSockets(this.ctx).map((ws) => [
        runnerOf(ws),
        this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0,
      ]),
    );
    return this.sql
      .exec<{ info: string; free: number; runs: string; connected_at: number; last_seen: number } & HistoryColumns>(
        `SELECT r.info, r.free, r.runs, r.connected_at, r.last_seen, r.load, h.samples
         FROM runners r LEFT JOIN history h ON h.runner = r.id ORDER BY r.connected_at`,
      )
      .toArray()
      .map((row) => {
        const claimed = JSON.parse(row.info) as RunnerInfo;
        // A device's processes share its cap: each counts what is left of it, oldest first.
        const device = deviceOfRunner(claimed.id);
        const left = capLeft.get(device) ?? this.limits.maxSlots;
        const info = { ...claimed, slots: Math.min(claimed.slots, left) };
        capLeft.set(device, left - info.slots);
        const history = row.samples ? recentSamples(JSON.parse(row.samples) as DeviceSample[], now) : [];
        return {
          ...info,
          busy: Math.min(info.slots, Math.max(0, claimed.slots - row.free)),
          // Just after a reconnect the device's last kept report stands until the next is kept.
          load: row.load ?? history.at(-1)?.load ?? null,
          history,
          runs: JSON.parse(row.runs) as string[],
          connected_at: row.connected_at,
          last_seen: Math.max(row.last_seen, pinged.get(info.id) ?? 0),
          cooled_until: cooled.get(deviceOfRunner(info.id)) ?? null,
        };
      });
  }

  /**
   * Runners, slots and counters without any history: what `/metrics` needs, in one query. A
   * device's slots count up to its cap, all its runner processes together, and its busy slots
   * up to those.
   */
  totals(): PoolTotals {
    const now = Date.now();
    this.dropSilent(now);
    const row = this.sql
      .exec<{ runners: number; slots: number | null; busy: number | null }>(
        `SELECT SUM(n) AS runners, SUM(MIN(?1, slots)) AS slots, SUM(MIN(?1, busy)) AS busy FROM (
           SELECT COUNT(*) AS n, SUM(json_extract(info, '$.slots')) AS slots,
             SUM(MAX(0, json_extract(info, '$.slots') - free)) AS busy
           FROM runners GROUP BY CASE WHEN instr(id, '.') > 0 THEN substr(id, 1, instr(id, '.') - 1) ELSE id END)`,
        this.limits.maxSlots,
      )
      .one();
    return {
      runners: row.runners ?? 0,
      slots: row.slots ?? 0,
      busy: row.busy ?? 0,
      samplesDropped: this.samplesDropped,
      rateLimited: { ...this.meters.closed },
      cooldowns: this.cooldownsStarted,
      devicesCooled: this.cooled(now).size,
      strayFrames: this.strayFrames,
      stallRepairs: this.stallRepairs,
    };
  }

  /**
   * A run lost attempts of `device`, `times` times (once an event, however many attempts it
   * held): counted against its cool-down. When that starts
   * one, the other runs its runners are in hear of it (`from` applies it itself, from the answer).
   * The answer is until when the device is cooled down, or null.
   */
  async lost(device: string, times: number, from: string): Promise<number | null> {
    const now = Date.now();
    const { state, cooled } = recordLosses(this.coolState(device), times, now, this.limits.cooldown);
    this.sql.exec(
      `INSERT INTO cooldowns (device, state, until) VALUES (?, ?, ?)
       ON CONFLICT (device) DO UPDATE SET state = excluded.state, until = excluded.until`,
      device,
      JSON.stringify(state),
      state.until,
    );
    if (!cooled) return state.until !== null && state.until > now ? state.until : null;
    this.cooldownsStarted++;
    console.warn(`device ${device} cooled down until ${new Date(state.until!).toISOString()} for lost attempts`);
    const runs = new Set(
      this.runnerRows()
        .filter((r) => deviceOfRunner(r.id) === device)
        .flatMap((r) => r.runs),
    );
    runs.delete(from);
    await Promise.all(
      [...runs].map((run) =>
        this.env.DAG_RUN.get(this.env.DAG_RUN.idFromString(run))
          .cool(device, state.until!)
          .catch((e: unknown) => console.error(`telling run ${run} of a cool-down`, e)),
      ),
    );
    return state.until;
  }

  /** Until when `device` is cooled down, or null. */
  cooledUntil(device: string): number | null {
    return this.cooled().get(device) ?? null;
  }

  /** Devices cooled down now, with until when. */
  cooled(now = Date.now()): Map<string, number> {
    const rows = this.sql
      .exec<{ device: string; until: number }>(`SELECT device, until FROM cooldowns WHERE until > ?`, now)
      .toArray();
    return new Map(rows.map((r) => [r.device, r.until]));
  }

  /** A DagRun ignored `frames` entries naming attempts their runner did not hold: counted for /metrics. */
  countStray(frames: number): void {
    this.strayFrames += frames;
  }

  private coolState(device: string): CoolState {
    const row = this.sql.exec<{ state: string }>(`SELECT state FROM cooldowns WHERE device = ?`, device).toArray()[0];
    return row ? (JSON.parse(row.state) as CoolState) : FRESH;
  }

  /** A DagRun closed one of its sockets for its rate limit: counted here, where /metrics reads. */
  countRateLimited(kind: SocketKind): void {
    this.meters.count(kind);
  }

  revoke(device: string): { runs: string[]; closed: number } {
    const { runners, closed } = closeDevice(this.ctx, device);
    const runs = new Set<string>();
    for (const runner of runners) {
      for (const row of this.runnerRows(runner)) row.runs.forEach((r) => runs.add(r));
      this.forget(runner);
    }
    return { runs: [...runs], closed };
  }

  connectedDevices(): string[] {
    return connectedDevices(this.ctx);
  }

  /** Closes and forgets the sockets of runners silent for longer than the heartbeat limit. */
  private dropSilent(now: number): void {
    for (const { ws } of silentSockets(this.ctx, now, this.heartbeatMs)) {
      this.drop(ws);
      ws.close(CLOSE.silent, "no heartbeat");
    }
  }

  override fetch(request: Request): Response {
    return acceptRunnerSocket(this.ctx, request);
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    // A runner closed for its rate is forgotten at once, not when its close handshake ends.
    await receiveFrame(
      this.ctx,
      ws,
      raw,
      { meters: this.meters, kind: "pool", limited: (ws) => this.drop(ws) },
      {
        hello: (ws, hello) => {
          const runner = { ...hello.runner, slots: Math.min(hello.runner.slots, this.limits.maxSlots) };
          const now = Date.now();
          this.sql.exec(
            `INSERT INTO runners (id, info, free, runs, connected_at, last_seen) VALUES (?, ?, ?, '[]', ?, ?)
             ON CONFLICT (id) DO UPDATE SET info = excluded.info, free = excluded.free, runs = '[]',
               last_seen = excluded.last_seen`,
            runner.id,
            JSON.stringify(runner),
            runner.slots,
            now,
            now,
          );
          const { heartbeatMs, limits } = this;
          send(ws, { type: "welcome", protocol: PROTOCOL_VERSION, heartbeatMs, slots: limits.maxSlots });
          this.setIdle(runner.id, 0, now); // until its status says otherwise
          this.match({ id: runner.id, info: runner, free: runner.slots, runs: [] });
        },
        frame: (ws, runner, msg) => {
          if (msg.type !== "status")
            return send(ws, {
              type: "error",
              message: `"${msg.type}" frames go to a run socket, not the pool socket`,
              fatal: false,
            });
          this.sql.exec(
            `UPDATE runners SET free = ?, runs = ?, last_seen = ? WHERE id = ?`,
            Math.min(msg.free, this.limits.maxSlots),
            JSON.stringify(msg.runs),
            Date.now(),
            runner,
          );
          if (msg.slots !== undefined)
            this.sql.exec(
              `UPDATE runners SET info = json_set(info, '$.slots', ?) WHERE id = ?`,
              Math.min(msg.slots, this.limits.maxSlots),
              runner,
            );
          if (msg.device) this.sample(runner, msg.device);
          const row = this.runnerRows(runner)[0];
          if (!row) return;
          this.match(row);
          this.setIdle(runner, row.free, Date.now());
        },
      },
    );
  }

  override webSocketClose(ws: WebSocket): void {
    this.drop(ws);
  }

  override webSocketError(ws: WebSocket): void {
    this.drop(ws);
  }

  /**
   * Keeps a device report as the runner's current reading and appends it to its history, unless
   * it comes sooner than a half heartbeat after the last one kept: then it is dropped, and
   * counted. The history is the device's (its runner id), so it survives a reconnect.
   */
  private sample(runner: string, device: { freeMemory: number; load: number }): void {
    const now = Date.now();
    const row = this.sql
      .exec<{ samples: string; last_at: number }>(`SELECT samples, last_at FROM history WHERE runner = ?`, runner)
      .toArray()[0];
    if (!keepsSample(row?.last_at ?? null, now, this.heartbeatMs)) {
      this.samplesDropped++;
      return;
    }
    const { freeMemory, load } = device;
    const current = `UPDATE runners SET info = json_set(info, '$.freeMemory', ?), load = ? WHERE id = ?`;
    this.sql.exec(current, freeMemory, load, runner);
    const kept = row ? (JSON.parse(row.samples) as DeviceSample[]) : [];
    const history = appendSample(kept, { at: now, load, freeMemory }, this.heartbeatMs);
    this.sql.exec(
      `INSERT INTO history (runner, samples, last_at) VALUES (?, ?, ?)
       ON CONFLICT (runner) DO UPDATE SET samples = excluded.samples, last_at = excluded.last_at`,
      runner,
      JSON.stringify(history),
      now,
    );
    // Devices that stopped reporting ten minutes ago have nothing left to show.
    this.sql.exec(`DELETE FROM history WHERE last_at <= ?`, now - HISTORY_MS);
  }

  private drop(ws: WebSocket): void {
    const runner = lastSocketOf(this.ctx, ws);
    if (runner) this.forget(runner);
  }

  /** A runner is gone: its row and its idle time. */
  private forget(runner: string): void {
    this.sql.exec(`DELETE FROM runners WHERE id = ?`, runner);
    this.setIdle(runner, 0, 0);
    this.idleKnown.delete(runner);
  }

  /**
   * Notes since when `runner` has had `free` idle slots, the count unchanged (a task that starts
   * or ends starts the count again), and watches for a stall.
   */
  private setIdle(runner: string, free: number, now: number): void {
    const known = this.idleKnown.get(runner);
    if (free <= 0) {
      if (known === 0) return;
      this.sql.exec(`DELETE FROM idle_slots WHERE runner = ?`, runner);
      this.idleKnown.set(runner, 0);
      for (const key of this.repaired) if (key.startsWith(`${runner} `)) this.repaired.delete(key);
      return;
    }
    if (known !== free) {
      this.sql.exec(
        `INSERT INTO idle_slots (runner, free, since) VALUES (?, ?, ?) ON CONFLICT (runner) DO UPDATE SET
           since = CASE WHEN free = excluded.free THEN since ELSE excluded.since END, free = excluded.free`,
        runner,
        free,
        now,
      );
      this.idleKnown.set(runner, free);
    }
    this.watchStalls(now, runner);
  }

  /** Points an idle runner at the most important run it can serve and is not in. */
  private match(runner: PoolRunner): void {
    const join = matchFor(runner, this.demands(), new Set(this.cooled().keys()));
    if (join) this.sendTo(runner.id, { type: "join", run: join.run, priority: join.priority });
  }

  /** Runs with unmet demand, oldest first. */
  private demands(): PoolDemand[] {
    return this.sql
      .exec<{ run: string; classes: string }>(`SELECT run, classes FROM demands ORDER BY since`)
      .toArray()
      .map((r) => ({ run: r.run, classes: JSON.parse(r.classes) as DemandClass[] }));
  }

  /** Connected runners (or the one with `id`). */
  private runnerRows(id?: string): PoolRunner[] {
    return this.sql
      .exec<{ id: string; info: string; free: number; runs: string }>(
        `SELECT id, info, free, runs FROM runners WHERE ?1 IS NULL OR id = ?1`,
        id ?? null,
      )
      .toArray()
      .map((r) => ({
        id: r.id,
        info: JSON.parse(r.info) as RunnerInfo,
        free: r.free,
        runs: JSON.parse(r.runs) as string[],
      }));
  }

  private sendTo(runner: string, message: CoordinatorMessage): void {
    for (const ws of socketsOf(this.ctx, runner)) send(ws, message);
  }
}
