/**
 * RunnerPool: presence and matchmaking for every connected runner, one object for the whole
 * coordinator. Runners keep a socket here and report their idle slots; runs tell the pool when
 * they have ready work nobody has taken (`demand`); the pool tells idle runners to join such
 * runs. Tasks and results never pass through here, so the pool's load grows with the number of
 * runners, not with the number of tasks.
 */
import { DurableObject } from "cloudflare:workers";
import { heartbeatMs, type Env } from "../env.js";
import { CLOSE, PROTOCOL_VERSION, type CoordinatorMessage, type RunnerInfo } from "../protocol/messages.js";
import { acceptRunnerSocket, answerHeartbeats, lastSocketOf, receiveFrame, runnerOf, send, silentRunners, socketsOf } from "./sockets.js";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS runners (id TEXT PRIMARY KEY, info TEXT NOT NULL, free INTEGER NOT NULL,
  runs TEXT NOT NULL, connected_at INTEGER NOT NULL, last_seen INTEGER NOT NULL, load REAL);
CREATE TABLE IF NOT EXISTS demand (run TEXT PRIMARY KEY, ready INTEGER NOT NULL, since INTEGER NOT NULL);
`;

/** A runner as `GET /api/runners` shows it. */
export interface RunnerView extends RunnerInfo {
  busy: number;
  /** CPU load in %, from the runner's latest device report (null before the first). */
  load: number | null;
  runs: string[];
  connected_at: number;
  last_seen: number;
}

export class RunnerPool extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(SCHEMA);
    answerHeartbeats(ctx);
    // Rows of runners whose sockets did not survive a restart are stale.
    const live = new Set(ctx.getWebSockets().map(runnerOf));
    for (const { id } of this.sql.exec<{ id: string }>(`SELECT id FROM runners`).toArray()) {
      if (!live.has(id)) this.sql.exec(`DELETE FROM runners WHERE id = ?`, id);
    }
  }

  /** A run reports how many of its ready tasks have no runner; 0 withdraws its demand. */
  async demand(run: string, ready: number): Promise<void> {
    if (ready <= 0) {
      this.sql.exec(`DELETE FROM demand WHERE run = ?`, run);
      return;
    }
    this.sql.exec(
      `INSERT INTO demand (run, ready, since) VALUES (?, ?, ?) ON CONFLICT (run) DO UPDATE SET ready = excluded.ready`,
      run,
      ready,
      Date.now(),
    );
    for (const row of this.sql.exec<{ id: string; runs: string }>(`SELECT id, runs FROM runners WHERE free > 0`).toArray()) {
      if (!(JSON.parse(row.runs) as string[]).includes(run)) this.sendTo(row.id, { type: "join", run });
    }
  }

  /** Connected runners with their device report and load; silent ones are dropped first. */
  async list(): Promise<RunnerView[]> {
    const now = Date.now();
    for (const { ws } of silentRunners(this.ctx, now, heartbeatMs(this.env))) {
      ws.close(CLOSE.silent, "no heartbeat");
      this.drop(ws);
    }
    const pinged = new Map(this.ctx.getWebSockets().map((ws) => [runnerOf(ws), this.ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0]));
    return this.sql
      .exec<{ info: string; free: number; runs: string; connected_at: number; last_seen: number; load: number | null }>(
        `SELECT info, free, runs, connected_at, last_seen, load FROM runners ORDER BY connected_at`,
      )
      .toArray()
      .map((row) => {
        const info = JSON.parse(row.info) as RunnerInfo;
        return {
          ...info,
          busy: Math.max(0, info.slots - row.free),
          load: row.load,
          runs: JSON.parse(row.runs) as string[],
          connected_at: row.connected_at,
          last_seen: Math.max(row.last_seen, pinged.get(info.id) ?? 0),
        };
      });
  }

  override async fetch(request: Request): Promise<Response> {
    return acceptRunnerSocket(this.ctx, request);
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    await receiveFrame(this.ctx, ws, raw, {
      hello: (ws, { runner }) => {
        const now = Date.now();
        this.sql.exec(
          `INSERT INTO runners (id, info, free, runs, connected_at, last_seen) VALUES (?, ?, ?, '[]', ?, ?)
           ON CONFLICT (id) DO UPDATE SET info = excluded.info, free = excluded.free, runs = '[]', last_seen = excluded.last_seen`,
          runner.id,
          JSON.stringify(runner),
          runner.slots,
          now,
          now,
        );
        send(ws, { type: "welcome", protocol: PROTOCOL_VERSION, heartbeatMs: heartbeatMs(this.env) });
        this.match(runner.id, runner.slots, []);
      },
      frame: (ws, runner, msg) => {
        if (msg.type !== "status") return send(ws, { type: "error", message: `"${msg.type}" frames go to a run socket, not the pool socket`, fatal: false });
        this.sql.exec(`UPDATE runners SET free = ?, runs = ?, last_seen = ? WHERE id = ?`, msg.free, JSON.stringify(msg.runs), Date.now(), runner);
        if (msg.device) {
          this.sql.exec(`UPDATE runners SET info = json_set(info, '$.freeMemory', ?), load = ? WHERE id = ?`, msg.device.freeMemory, msg.device.load, runner);
        }
        this.match(runner, msg.free, msg.runs);
      },
    });
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    this.drop(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    this.drop(ws);
  }

  private drop(ws: WebSocket): void {
    const runner = lastSocketOf(this.ctx, ws);
    if (runner) this.sql.exec(`DELETE FROM runners WHERE id = ?`, runner);
  }

  /** Points an idle runner at the oldest run with unmet demand that it is not already in. */
  private match(runner: string, free: number, runs: string[]): void {
    if (free <= 0) return;
    const wanted = this.sql.exec<{ run: string }>(`SELECT run FROM demand ORDER BY since`).toArray();
    const run = wanted.find((d) => !runs.includes(d.run));
    if (run) this.sendTo(runner, { type: "join", run: run.run });
  }

  private sendTo(runner: string, message: CoordinatorMessage): void {
    for (const ws of socketsOf(this.ctx, runner)) send(ws, message);
  }
}
