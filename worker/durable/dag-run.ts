/**
 * DagRun: one Durable Object per submitted run, a thin shell around the run's state machine
 * (run/machine.ts). It loads nothing up front: each event runs `transition` inside one SQLite
 * transaction, then the shell performs the returned effects (frames to runners, a word to the
 * RunnerPool, the D1 index). Runner sockets use the hibernation API, so an idle run costs
 * nothing and a woken one finds its state in SQLite.
 */
import type { RunView, TaskView } from "../../core/api.js";
import { DurableObject } from "cloudflare:workers";
import type { Requirements, ResolvedPlan } from "../../core/dag/plan.js";
import { cachedOutputs, fileOutputs, indexRun } from "../db.js";
import { sha256Hex } from "../sha256.js";
import { heartbeatMs, pool, socketLimits, type Env } from "../env.js";
import { CLOSE, PROTOCOL_VERSION, type BlobRef, type TaskResult } from "../../core/protocol/messages.js";
import { outputKey } from "../routes/blobs.js";
import { meets } from "../../core/match.js";
import {
  cacheMaterial,
  demand,
  IllegalTransition,
  transition,
  type Effect,
  type MachineConfig,
  type RunEvent,
} from "../run/machine.js";
import { emptyHistogram, observe, type RunHistograms } from "../metrics.js";
import { MAX_TASK_CHANGES, type WatchMessage } from "../../core/protocol/watch.js";
import { SocketMeters, type SocketKind } from "./meter.js";
import { acceptRunnerSocket, admitFrame, answerHeartbeats, lastSocketOf, receiveFrame, runnerOf } from "./sockets.js";
import { runnerSockets, send, silentRunners, socketsOf } from "./sockets.js";
import { Changes, SqlStore } from "./sql-store.js";
import { isFinal, type RunStatus, type TaskState, type ViewState } from "../../core/status.js";
import type { RunSummary } from "../../core/api.js";
import { httpStatus, ok, refusal, type Answer, type Refusal } from "../errors.js";
import type { ControlAction, DagRunRpc } from "../rpc.js";

/** Tag of watchers' sockets (`GET /api/dags/:id/watch`). */
const WATCH_TAG = "watch";
/** Watchers hear of changes at most this often; the D1 index follows at most every INDEX_MS. */
const WATCH_MS = 250;
const INDEX_MS = 1000;

export class DagRun extends DurableObject<Env> implements DagRunRpc {
  private readonly store: SqlStore;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.store = new SqlStore(ctx.storage.sql);
    this.config = { leaseGraceMs: heartbeatMs(env) };
    answerHeartbeats(ctx);
    // After a restart, runners whose sockets died with the old process get a grace period
    // (their leases' deadlines) to reconnect and say which attempts they still hold.
    void ctx.blockConcurrencyWhile(async () => {
      if (!this.store.meta("id") || isFinal(this.store.status())) return;
      if (ctx.getWebSockets(WATCH_TAG).length > 0) this.store.watching = new Changes();
      const live = new Set(runnerSockets(ctx).map(runnerOf));
      for (const { id } of this.store.runners()) if (!live.has(id)) await this.apply({ type: "forget", runner: id });
      if (this.store.counts().lookup > 0) void this.lookup();
    });
  }

  private readonly config: MachineConfig;
  /** Rate limits of runner and watcher sockets; the pool counts the closes for /metrics. */
  private readonly meters = new SocketMeters<WebSocket>(socketLimits(this.env));
  /** The alarm time this object last set (null: none pending). */
  private alarmAt: number | null = null;
  /** Whether a result-cache lookup loop is running. */
  private looking = false;
  /** The pending flush to watchers and the D1 index, if any. */
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private indexedAt = 0;
  /** The run changed since the D1 index was last refreshed. */
  private unindexed = false;
  /** Histograms and cache hits of this run, kept in meta and in the D1 index with each refresh. */
  private observed: (RunHistograms & { cacheHits: number }) | undefined;

  /** Records the plan and starts scheduling. Called once, by `POST /api/dags`. */
  async start(id: string, plan: ResolvedPlan): Promise<Answer<RunSummary>> {
    if (this.store.meta("id")) return refusal("conflict", `run ${id} has its plan already`);
    const now = Date.now();
    this.ctx.storage.transactionSync(() => {
      this.store.setMeta("id", id);
      this.store.setMeta("name", plan.name);
      this.store.setMeta("created_at", String(now));
    });
    await this.apply({ type: "start", plan });
    await this.index();
    return ok(this.summary()!);
  }

  async status(): Promise<Answer<RunSummary>> {
    const summary = this.summary();
    return summary ? ok((await this.withWaiting(summary)).summary) : this.noRun();
  }

  async view(offset = 0, limit = -1, state?: TaskState): Promise<Answer<RunView>> {
    const raw = this.summary();
    if (!raw) return this.noRun();
    const { summary, waiting } = await this.withWaiting(raw);
    const counts = this.store.nodeCounts();
    const nodes = this.store.nodeIds().map((id) => {
      const { spec } = this.store.node(id);
      return {
        id,
        module: spec.module,
        sha256: spec.sha256,
        deps: spec.deps,
        instances: spec.instances,
        requires: spec.requires ?? null,
        counts: counts.get(id) ?? {},
      };
    });
    const tasks = this.store.taskViews(offset, limit, state).map((t) => {
      const why = t.state === "ready" ? waiting.get(t.node) : undefined;
      return why ? { ...t, state: "waiting" as const, waiting: why } : t;
    });
    return ok({ ...summary, nodes, tasks });
  }

  private noRun(): Refusal {
    return refusal("not_found", `no run ${this.ctx.id.toString()}`);
  }

  /**
   * Moves ready tasks that no connected runner can take to `waiting`, with the reason ("no
   * runner with label gpu") by node. Worked out on every read, so it never goes stale: classes
   * of work a runner attached to this run can take need no question; the pool is asked about
   * the rest (often none, so polling a running run costs no call to the pool).
   */
  private async withWaiting(summary: RunSummary): Promise<{ summary: RunSummary; waiting: Map<string, string> }> {
    const waiting = new Map<string, string>();
    if (summary.counts.ready === 0 || summary.status === "paused") return { summary, waiting };
    const attached = this.store.runners().flatMap((r) => (r.caps ? [r.caps] : []));
    const open = demand(this.store, summary.counts.ready).filter(
      (c) => !attached.some((caps) => meets(c.requires, caps)),
    );
    if (open.length === 0) return { summary, waiting };
    const reasons = await pool(this.env).waiting(open);
    const why = new Map(open.map((c, i) => [JSON.stringify(c.requires), reasons[i]]));
    const constrained = this.store.constrainedNodes();
    for (const id of this.store.nodeIds()) {
      const reason = why.get(JSON.stringify(constrained.includes(id) ? this.store.node(id).spec.requires : null));
      if (reason) waiting.set(id, reason);
    }
    let moved = 0;
    for (const id of waiting.keys()) moved += this.store.readyIn(id);
    const counts = { ...summary.counts, ready: summary.counts.ready - moved, waiting: moved };
    return { summary: { ...summary, counts }, waiting };
  }

  async control(action: ControlAction): Promise<Answer<{ status: RunStatus }>> {
    if (!this.store.meta("id")) return refusal("not_found", "no such run");
    try {
      await this.apply({ type: "control", action });
    } catch (e) {
      if (e instanceof IllegalTransition) return refusal("conflict", e.message);
      throw e;
    }
    return ok({ status: this.store.status() });
  }

  /** Deadlines (leases, retry back-offs) and the heartbeat sweep. */
  override async alarm(): Promise<void> {
    this.alarmAt = null;
    if (!this.store.meta("id") || isFinal(this.store.status())) return;
    const now = Date.now();
    for (const { runner, ws } of silentRunners(this.ctx, now, this.config.leaseGraceMs)) {
      ws.close(CLOSE.silent, "no heartbeat");
      if (lastSocketOf(this.ctx, ws) === runner) await this.apply({ type: "detach", runner });
    }
    await this.apply({ type: "tick" });
  }

  output(key: string): Answer<Uint8Array | BlobRef> {
    const found = this.store.output(key);
    if (!found) return refusal("not_found", `run ${this.ctx.id.toString()} has no task ${key}`);
    if (!found.output) return refusal("conflict", `task ${key} has no accepted output (it is ${found.state})`);
    return ok(found.output);
  }

  /**
   * Runner sockets (`GET /api/runners/connect?run=<id>`) and watchers (`GET
   * /api/dags/:id/watch`), already authenticated by the Worker.
   */
  override async fetch(request: Request): Promise<Response> {
    if (!this.store.meta("id")) return Response.json({ error: "no such run" }, { status: httpStatus("not_found") });
    if (!new URL(request.url).pathname.endsWith("/watch")) return acceptRunnerSocket(this.ctx, request);
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return Response.json({ error: "expected a WebSocket upgrade" }, { status: 426 });
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [WATCH_TAG]);
    this.store.watching ??= new Changes();
    server.send(JSON.stringify(await this.snapshot()));
    if (isFinal(this.store.status())) server.close(CLOSE.finished, `run ${this.store.status()}`);
    return new Response(null, { status: 101, webSocket: client });
  }

  /** The whole run for a new watcher: its summary and every node with its instances counted by state. */
  private async snapshot(): Promise<WatchMessage> {
    const answer = await this.view(0, 0);
    if (!answer.ok) throw new Error(answer.message);
    const view = answer.value;
    return { type: "snapshot", run: summaryOf(view), nodes: view.nodes.map(({ sha256: _sha, ...node }) => node) };
  }

  /** Flushes soon: watchers within WATCH_MS, the D1 index within INDEX_MS. */
  private schedule(): void {
    if (this.flushTimer) return;
    this.flushTimer = setTimeout(() => void this.flush(), this.store.watching ? WATCH_MS : INDEX_MS);
  }

  /**
   * Sends watchers what changed since the last flush (one update for any number of events)
   * and refreshes the run's line in the D1 index. When the run has ended the update is the
   * last one and the watchers' sockets close.
   */
  private async flush(): Promise<void> {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const final = isFinal(this.store.status());
    const watchers = this.ctx.getWebSockets(WATCH_TAG);
    const changes = this.store.watching;
    if (watchers.length === 0) this.store.watching = null;
    else if (changes && (!changes.empty || final)) {
      this.store.watching = new Changes();
      const { summary } = await this.withWaiting(this.summary()!);
      const nodes = [...this.store.nodeCounts([...changes.nodes])].map(([id, counts]) => ({ id, counts }));
      const tasks =
        changes.bulk || changes.tasks.size > MAX_TASK_CHANGES
          ? null
          : [...changes.tasks].map(([id, state]) => ({ id, state }));
      const text = JSON.stringify({ type: "update", run: summary, nodes, tasks } satisfies WatchMessage);
      for (const ws of watchers) {
        try {
          ws.send(text);
          if (final) ws.close(CLOSE.finished, `run ${summary.status}`);
        } catch {
          // gone: its close handler has nothing to do
        }
      }
    }
    if (!this.unindexed) return;
    if (final || Date.now() - this.indexedAt >= INDEX_MS) await this.index();
    else this.schedule();
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const count = (kind: SocketKind) => pool(this.env).countRateLimited(kind);
    if (this.ctx.getTags(ws).includes(WATCH_TAG)) {
      // Watchers only listen: a frame from one is metered, then ignored.
      admitFrame({ meters: this.meters, kind: "watch", limited: () => count("watch") }, ws, raw);
      return;
    }
    // A runner closed for its rate is detached at once, not when its close handshake ends.
    const limited = (ws: WebSocket) => Promise.all([count("run"), this.dropSocket(ws)]);
    const gate = { meters: this.meters, kind: "run" as const, limited };
    await receiveFrame(this.ctx, ws, raw, gate, {
      hello: async (ws, hello) => {
        send(ws, {
          type: "welcome",
          protocol: PROTOCOL_VERSION,
          run: this.ctx.id.toString(),
          heartbeatMs: this.config.leaseGraceMs,
        });
        if (isFinal(this.store.status())) return finish(ws, this.store.status());
        const { id, name, memory, cores, labels, arch, platform } = hello.runner;
        await this.apply({
          type: "attach",
          runner: id,
          name,
          want: hello.want,
          holding: hello.holding,
          caps: { memory, cores, labels, arch, platform },
        });
      },
      frame: async (ws, runner, msg) => {
        switch (msg.type) {
          case "want":
            return this.apply({ type: "want", runner, want: msg.want, received: msg.received });
          case "results":
            return this.apply({
              type: "results",
              runner,
              results: await this.checkBlobs(msg.results),
              want: msg.want,
              received: msg.received,
            });
          case "reject":
            return this.apply({ type: "reject", runner, tasks: msg.tasks });
          case "status":
            return send(ws, {
              type: "error",
              message: `"status" frames go to the pool socket, not a run socket`,
              fatal: false,
            });
        }
      },
    });
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    await this.dropSocket(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.dropSocket(ws);
  }

  private async dropSocket(ws: WebSocket): Promise<void> {
    try {
      const runner = lastSocketOf(this.ctx, ws);
      if (!runner) return;
      if (!this.store.meta("id") || isFinal(this.store.status())) return;
      await this.apply({ type: "detach", runner });
    } catch (e) {
      console.error("DagRun webSocketClose", e);
    }
  }

  /** A result whose output blob is not in storage becomes a retryable failure before the machine sees it. */
  private async checkBlobs(results: TaskResult[]): Promise<TaskResult[]> {
    return Promise.all(
      results.map(async (r) => {
        if (!r.outputRef || (await this.env.BLOBS.head(outputKey(r.outputRef.sha256)))?.size === r.outputRef.size)
          return r;
        const message = `the output blob sha256:${r.outputRef.sha256} (${r.outputRef.size} bytes) was not uploaded`;
        return {
          ...r,
          ok: false,
          outputRef: undefined,
          failure: { kind: "output" as const, message, retryable: true },
        };
      }),
    );
  }

  /** Runs one event through the state machine in one transaction, then performs its effects. */
  private async apply(event: RunEvent): Promise<void> {
    const now = Date.now();
    const effects = this.ctx.storage.transactionSync(() => transition(this.store, event, now, this.config));
    this.observe(event, effects, now);
    await this.perform(effects);
    await this.arm(now);
    if (!isFinal(this.store.status())) {
      this.unindexed = true;
      this.schedule();
    }
  }

  /** Notes attempt durations (as runners report them), dispatch latencies and cache hits. */
  private observe(event: RunEvent, effects: Effect[], now: number): void {
    const m = this.metrics();
    if (event.type === "results") for (const r of event.results) observe(m.duration, r.durationMs / 1000);
    if (event.type === "looked_up") m.cacheHits += event.hits.length;
    for (const effect of effects) {
      if (effect.type !== "dispatch") continue;
      for (const task of effect.tasks) {
        const ready = this.store.nodeReadyAt(task.task.replace(/\[\d+\]$/, ""));
        if (ready !== null) observe(m.latency, Math.max(0, now - ready) / 1000);
      }
    }
  }

  private metrics(): RunHistograms & { cacheHits: number } {
    const saved = this.store.meta("metrics");
    this.observed ??= saved
      ? JSON.parse(saved)
      : { duration: emptyHistogram(), latency: emptyHistogram(), cacheHits: 0 };
    return this.observed!;
  }

  /** Asks the result cache for every task in `lookup`, 100 at a time; one loop at a time. */
  private async lookup(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      for (;;) {
        const rows = this.store.lookups(100);
        if (rows.length === 0 || isFinal(this.store.status())) return;
        const inputs = new Map();
        const keys = await Promise.all(rows.map((row) => sha256Hex(cacheMaterial(this.store, row, inputs))));
        let found = new Map<string, Uint8Array | BlobRef>();
        try {
          found = await cachedOutputs(this.env.DB, keys);
        } catch (e) {
          console.error("DagRun cache lookup", e); // a cache that cannot answer is a miss
        }
        const hits = rows.flatMap((row, i) =>
          found.has(keys[i]!) ? [{ task: row.key, output: found.get(keys[i]!)! }] : [],
        );
        const misses = rows.flatMap((row, i) => (found.has(keys[i]!) ? [] : [{ task: row.key, key: keys[i]! }]));
        await this.apply({ type: "looked_up", hits, misses });
      }
    } finally {
      this.looking = false;
    }
  }

  /** Files accepted outputs in the result cache (best effort: a failure only costs a future miss). */
  private async fileCache(entries: { key: string; task: string }[]): Promise<void> {
    try {
      const outputs = entries.flatMap(({ key, task }) => {
        const output = this.store.output(task)?.output;
        return output ? [{ key, output }] : [];
      });
      if (outputs.length > 0) await fileOutputs(this.env.DB, outputs);
    } catch (e) {
      console.error("DagRun cache file", e);
    }
  }

  /** One alarm serves every deadline, and the heartbeat sweep while runners are attached. */
  private async arm(now: number): Promise<void> {
    if (isFinal(this.store.status())) return;
    const deadline = this.store.nextDeadline();
    const sweep = runnerSockets(this.ctx).length > 0 ? now + this.config.leaseGraceMs / 2 : null;
    const next = deadline === null ? sweep : sweep === null ? deadline : Math.min(deadline, sweep);
    if (next === null || (this.alarmAt !== null && this.alarmAt <= next && this.alarmAt > now)) return;
    this.alarmAt = next;
    await this.ctx.storage.setAlarm(next);
  }

  private async perform(effects: Effect[]): Promise<void> {
    const runId = this.ctx.id.toString();
    for (const effect of effects) {
      switch (effect.type) {
        case "dispatch":
          for (const ws of socketsOf(this.ctx, effect.runner))
            send(ws, { type: "tasks", tasks: effect.tasks, backlog: effect.backlog });
          break;
        case "cancel":
          for (const ws of socketsOf(this.ctx, effect.runner)) send(ws, { type: "cancel", tasks: effect.tasks });
          break;
        case "demand": {
          const wanted = JSON.stringify(effect.classes);
          if ((this.store.meta("demand") ?? "[]") === wanted) break;
          this.store.setMeta("demand", wanted);
          await pool(this.env).demand(runId, effect.classes);
          break;
        }
        case "status":
          await this.index();
          break;
        case "lookup":
          void this.lookup();
          break;
        case "cache":
          void this.fileCache(effect.entries);
          break;
        case "finished":
          await this.ctx.storage.deleteAlarm();
          for (const ws of runnerSockets(this.ctx)) finish(ws, effect.status);
          this.store.setMeta("demand", "[]");
          await pool(this.env).demand(runId, []);
          await this.flush();
          break;
      }
    }
  }

  private summary(): RunSummary | null {
    const id = this.store.meta("id");
    if (!id) return null;
    const counts = this.store.counts();
    return {
      id,
      name: this.store.meta("name") ?? "unnamed",
      status: this.store.status(),
      created_at: Number(this.store.meta("created_at")),
      updated_at: Date.now(),
      finished_at: this.store.meta("finished_at") ? Number(this.store.meta("finished_at")) : null,
      counts: { ...counts, waiting: 0 },
      tasks_total: Object.values(counts).reduce((a, b) => a + b, 0),
    };
  }

  private async index(): Promise<void> {
    const s = this.summary();
    if (!s) return;
    this.indexedAt = Date.now();
    this.unindexed = false;
    const metrics = this.metrics();
    this.store.setMeta("metrics", JSON.stringify(metrics));
    try {
      const { waiting: _waiting, ...counts } = s.counts;
      await indexRun(
        this.env.DB,
        {
          id: s.id,
          name: s.name,
          status: s.status,
          tasks: s.tasks_total,
          counts,
          created_at: s.created_at,
          updated_at: s.updated_at,
          finished_at: s.finished_at,
        },
        metrics,
      );
    } catch (e) {
      // The index is a convenience for listings; the run itself lives in this object.
      console.error("DagRun index", e);
    }
  }
}

function summaryOf({ nodes: _nodes, tasks: _tasks, ...summary }: RunView): RunSummary {
  return summary;
}

function finish(ws: WebSocket, status: RunStatus): void {
  send(ws, { type: "finished", status });
  ws.close(CLOSE.finished, `run ${status}`);
}
