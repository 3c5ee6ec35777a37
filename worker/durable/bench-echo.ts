/**
 * BenchEcho: the floor under a run's hop, for `npm run bench` (bench/echo.ts). A socket to this
 * object takes the path a runner's socket to its DagRun takes (wrangler's proxy, the Worker, a
 * hibernatable socket on a SQLite-backed object); each text frame writes one row and is answered
 * with a small frame, so a round trip costs one incoming message, one statement and the commit
 * the answer waits for (the output gate), and nothing of the run's own work. The Worker routes to
 * it (`GET /api/bench/echo`) only when the var BENCH_ECHO is "1".
 */
import { DurableObject } from "cloudflare:workers";
import type { Env } from "../env.js";

const SCHEMA = `CREATE TABLE IF NOT EXISTS echoes (id INTEGER PRIMARY KEY, frame TEXT NOT NULL, at INTEGER NOT NULL)`;

/** The answer to every frame. */
const ACK = '{"type":"ack"}';

export class BenchEcho extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // Synchronous: nothing reaches the object before its table exists.
    ctx.storage.sql.exec(SCHEMA);
  }

  override fetch(request: Request): Response {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return Response.json({ error: "expected a WebSocket upgrade" }, { status: 426 });
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, ["echo"]);
    return new Response(null, { status: 101, webSocket: client });
  }

  override webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): void {
    try {
      const frame = typeof raw === "string" ? raw : new TextDecoder().decode(raw);
      this.ctx.storage.sql.exec(`INSERT OR REPLACE INTO echoes (id, frame, at) VALUES (1, ?, ?)`, frame, Date.now());
      ws.send(ACK);
    } catch (e) {
      console.error("BenchEcho webSocketMessage", e);
      ws.close(1011, "echo failed");
    }
  }

  override webSocketClose(ws: WebSocket): void {
    try {
      ws.close();
    } catch {
      // closed already (the runtime may have answered the close itself)
    }
  }

  override webSocketError(_ws: WebSocket, error: unknown): void {
    console.error("BenchEcho webSocketError", error);
  }
}
