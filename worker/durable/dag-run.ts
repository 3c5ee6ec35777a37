/**
 * DagRun: one Durable Object per submitted run, the glue between the run's state machine
 * (run/machine.ts) and one module per concern of its host (run-host/, wired in
 * dag-run-concerns.ts). Each event runs `transition` inside one SQLite transaction, with the
 * histograms observed in it; then the effects are performed (run-host/effects.ts), and the one
 * alarm is armed for the earliest of the machine's deadlines, the sweep for silent runners and the
 * coalesced flushes to the watchers and the D1 run index. Reads answer from the SQL views with the
 * waiting view. Runner and watcher sockets use the hibernation API, so an idle run costs nothing
 * and a woken one finds its state in SQLite. Calls that can fail answer an `Answer` (errors.ts).
 */
import { DurableObject } from "cloudflare:workers";
import type { RetryAnswer, RunSummary, RunView, Submitter, TimelineView } from "../../core/api.js";
import type { ResolvedPlan } from "../../core/dag/plan.js";
import { CLOSE, deviceOfRunner, PROTOCOL_VERSION, type BlobRef } from "../../core/protocol/messages.js";
import { isFinal, type RunStatus, type TaskState } from "../../core/status.js";
import { fileBlobs, parseTaskKey } from "../../core/abi.js";
import { recordRefs } from "../retention.js";
import type { SqlStore } from "./sql-store.js";
import type { LogRead } from "./run-logs.js";
import { outputKey } from "../blob-keys.js";
import { pool, type Env } from "../env.js";
import { httpStatus, ok, refusal, type Answer } from "../errors.js";
import { DEVICE_HEADER, type ControlAction, type DagRunRpc, type Fetchable, type RunLink } from "../rpc.js";
import { backlogs, demand, envelopeOf, IllegalTransition, transition, type RunEvent } from "../run/machine.js";
import { isDue } from "../run-host/alarm.js";
import { demandRetryAt, perform, retryDemand } from "../run-host/effects.js";
import type { DemandClass } from "../../core/match.js";
import { attachEvent, frameEvent } from "../run-host/run-frames.js";
import { concerns, WATCH_TAG } from "./dag-run-concerns.js";
import type { SocketKind } from "./meter.js";
import {
  acceptRunnerSocket,
  admitFrame,
  answerHeartbeats,
  closeDevice,
  finishSocket,
  lastSocketOf,
} from "./sockets.js";
import { receiveFrame, runnerOf, runnerSockets, send, silentSockets } from "./sockets.js";

/** The most bytes of inline outputs a linked retry takes from the run it retries (they travel over RPC). */
const MAX_SEED_BYTES = 16 * 1024 * 1024;

/** How many times the envelope of one attempt may be fetched (a retry or two of a failed download). */
const ENVELOPE_FETCHES = 3;

export class DagRun extends DurableObject<Env> implements DagRunRpc {
  /** The run's parts over its storage; made again, empty, when the run is deleted (`purge`). */
  private run = concerns(this.ctx, this.env, { apply: (event) => this.apply(event) });
  /** Fetches of each attempt's envelope, `task#attempt` → count, since the object started. */
  private readonly envelopesAsked = new Map<string, number>();
  /**
   * Sockets whose hello is still being handled (it asks the pool of a cool-down): their next
   * frames wait for it, or a want sent right after the hello would find no runner attached. By
   * socket, not runner: frames a replaced socket sent before the reconnect go as they came.
   */
  private readonly attaching = new Map<WebSocket, Promise<void>>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    answerHeartbeats(ctx);
    // After a restart, runners whose sockets died with the old process get a grace period
    // (their leases' deadlines) to reconnect and say which attempts they still hold.
    void ctx.blockConcurrencyWhile(async () => {
      const { store, watchers, cache } = this.run;
      if (!this.live()) return;
      watchers.restore();
      const connected = new Set(runnerSockets(ctx).map(runnerOf));
      for (const { id } of store.runners()) if (!connected.has(id)) await this.apply({ type: "forget", runner: id });
      if (store.counts().lookup > 0) void cache.lookup();
    });
  }

  async start(id: string, plan: ResolvedPlan, by: Submitter, link?: RunLink): Promise<Answer<RunSummary>> {
    const { store, index, views } = this.run;
    if (store.meta("id")) return refusal("conflict", `run ${id} has its plan already`);
    this.ctx.storage.transactionSync(() => {
      store.setMeta("id", id);
      store.setMeta("name", plan.name);
      store.setMeta("created_at", String(Date.now()));
      if (link) store.setMeta("retry_of", link.from);
      store.setMeta("submitted_by", JSON.stringify(by));
    });
    try {
      await this.apply({ type: "start", plan, ...(link ?? {}) });
    } catch (e) {
      // A plan the object cannot keep leaves no run behind: the id goes with it, and its claims.
      store.forget();
      this.ctx.storage.transactionSync(() => store.deleteMeta("id"));
      await this.env.DB.prepare(`DELETE FROM blob_refs WHERE run = ?`)
        .bind(id)
        .run()
        .catch((e: unknown) => console.error(`run ${id}: removing the blob claims of a start that failed`, e));
      throw e;
    }
    await index.refresh();
    return ok(views.summary()!);
  }

  /**
   * Deletes the run's storage, alarm and all (retention.ts `deleteRun`); 409 while it is open.
   * The object answers "no such run" from then on.
   */
  async purge(): Promise<Answer<{ id: string }>> {
    const id = this.run.store.meta("id");
    if (!id) return refusal("not_found", "no such run");
    const status = this.run.store.status();
    if (!isFinal(status)) return refusal("conflict", `run ${id} is ${status}: cancel it first, or wait for its end`);
    for (const ws of this.ctx.getWebSockets()) ws.close(CLOSE.finished, "run deleted");
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.run = concerns(this.ctx, this.env, { apply: (event) => this.apply(event) });
    return ok({ id });
  }

  async status(): Promise<Answer<RunSummary>> {
    return found(await this.run.summary(), this.noRun());
  }

  async view(offset = 0, limit = -1, state?: TaskState): Promise<Answer<RunView>> {
    return found(await this.run.read(offset, limit, state), this.noRun());
  }

  /** Every attempt, and the tasks finished per bucket over the whole run (`GET /api/dags/:id/timeline`). */
  timeline(): Answer<TimelineView> {
    return found(this.run.views.timeline(), this.noRun());
  }

  async control(action: ControlAction): Promise<Answer<{ status: RunStatus }>> {
    if (!this.run.store.meta("id")) return refusal("not_found", "no such run");
    try {
      await this.apply({ type: "control", action });
    } catch (e) {
      if (e instanceof IllegalTransition) return refusal("conflict", e.message);
      throw e;
    }
    return ok({ status: this.run.store.status() });
  }

  async retry(tasks?: string[]): Promise<Answer<RetryAnswer>> {
    const { store, index } = this.run;
    if (!store.meta("id")) return refusal("not_found", "no such run");
    try {
      await this.apply({ type: "retry", tasks });
    } catch (e) {
      if (e instanceof IllegalTransition) return refusal("conflict", e.message);
      throw e;
    }
    await index.refresh();
    const counts = store.counts();
    const retried = counts.blocked + counts.lookup + counts.ready + counts.leased + counts.backoff;
    return ok({ id: store.meta("id")!, status: store.status(), retried });
  }

  retryFrom(task: string): Answer<{ plan: ResolvedPlan } & RunLink> {
    const { store } = this.run;
    const id = store.meta("id");
    if (!id) return refusal("not_found", "no such run");
    if (!isFinal(store.status()))
      return refusal("conflict", `run ${id} is ${store.status()}: retry from a task once it ended`);
    const link = store.linkFrom(task, MAX_SEED_BYTES);
    if (typeof link === "string") return refusal("conflict", link);
    return ok({ plan: { name: store.meta("name") ?? "unnamed", ...link.plan }, from: id, seeds: link.seeds });
  }

  output(key: string): Answer<Uint8Array | BlobRef> {
    const task = this.run.views.output(key);
    if (!task) return refusal("not_found", `run ${this.ctx.id.toString()} has no task ${key}`);
    if (!task.output) return refusal("conflict", `task ${key} has no accepted output (it is ${task.state})`);
    return ok(task.output);
  }

  logs(task: string, attempt: number | undefined, offset: number): Answer<LogRead> {
    if (!this.run.store.meta("id")) return this.noRun();
    return this.run.logs.read(task, attempt, offset);
  }

  envelope(device: string, task: string, attempt: number): Answer<string> {
    const { store } = this.run;
    const row = store.task(task);
    const mine = row?.runner === device || row?.runner?.startsWith(`${device}.`);
    if (!row || row.state !== "leased" || !mine || row.attempt !== attempt)
      return refusal("forbidden", `device ${device} holds no lease of ${task} attempt ${attempt} in this run`);
    // Building one costs the run as much as the envelope is large: a few times per attempt at most.
    const key = `${task}#${attempt}`;
    const asked = (this.envelopesAsked.get(key) ?? 0) + 1;
    if (asked > ENVELOPE_FETCHES)
      return refusal(
        "forbidden",
        `the envelope of ${task} attempt ${attempt} was fetched ${ENVELOPE_FETCHES} times already`,
      );
    if (this.envelopesAsked.size > 10_000) this.envelopesAsked.clear();
    this.envelopesAsked.set(key, asked);
    return ok(envelopeOf(store, row, attempt));
  }

  names(device: string, what: Fetchable): boolean {
    return this.run.views.names(device, what);
  }

  /**
   * Whether `runner`, which has had idle slots since `since`, gets nothing from this run while
   * the run has work for it: live and not paused, with ready tasks it can take, no credit here
   * and nothing sent to it since then (or not attached). A busy run's runners often have idle
   * slots only while tasks are on their way; that is not a stall. The pool asks before it
   * repairs one.
   */
  starved(runner: string, since: number): boolean {
    const { store } = this.run;
    if (!this.live() || store.status() === "paused") return false;
    const ready = store.counts().ready;
    const row = store.runner(runner);
    if (!row) return ready > 0;
    return row.credit === 0 && row.sentAt <= since && backlogs(store, ready, Date.now())(row) > 0;
  }

  async cool(device: string, until: number): Promise<void> {
    if (this.live()) await this.run.conduct.cool(device, until);
  }

  async revoke(device: string): Promise<number> {
    const { runners, closed } = closeDevice(this.ctx, device);
    if (!this.live()) return closed;
    for (const runner of runners) {
      // The operator's doing, not the tasks': their attempts are handed back uncharged.
      const tasks = this.run.store.leasedTo(runner).map((row) => ({ task: row.key, attempt: row.attempt }));
      await this.apply({ type: "reject", runner, tasks });
      await this.apply({ type: "detach", runner });
    }
    return closed;
  }

  /**
   * The one alarm: a demand the pool did not confirm, silent runners, due deadlines (leases,
   * back-offs), due flushes to watchers and the index.
   */
  override async alarm(): Promise<void> {
    const { clock, config, store, watchers, index, effects } = this.run;
    clock.fired();
    const now = Date.now();
    if (isDue(demandRetryAt(store), now)) await retryDemand(effects, this.demandNow());
    if (!this.live()) {
      // A run that ended has an alarm only while its index line failed to be written.
      if (store.meta("id") && isDue(index.due(), now)) await index.refresh();
      return this.arm(now);
    }
    for (const { runner, ws } of silentSockets(this.ctx, now, config.leaseGraceMs)) {
      const last = runner !== null && lastSocketOf(this.ctx, ws) === runner;
      ws.close(CLOSE.silent, "no heartbeat");
      if (last) await this.apply({ type: "detach", runner });
    }
    // Only a due deadline needs the machine: an event with none changes nothing.
    if (isDue(store.nextDeadline(), now)) await this.apply({ type: "tick" });
    if (isDue(watchers.due(), now)) await watchers.flush(isFinal(store.status()));
    if (isDue(index.due(), now)) await index.refresh();
    await this.arm(now);
  }

  /**
   * Runner sockets (`GET /api/runners/connect?run=<id>`, which sets DEVICE_HEADER to the device it
   * proved) and watchers (`GET /api/dags/:id/watch`, which removes any such header), authenticated
   * by the Worker. The header decides which, never the URL a client wrote.
   */
  override async fetch(request: Request): Promise<Response> {
    if (!this.run.store.meta("id")) return Response.json({ error: "no such run" }, { status: httpStatus("not_found") });
    if (request.headers.has(DEVICE_HEADER)) return acceptRunnerSocket(this.ctx, request);
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket")
      return Response.json({ error: "expected a WebSocket upgrade" }, { status: 426 });
    const { 0: client, 1: server } = new WebSocketPair();
    this.ctx.acceptWebSocket(server, [WATCH_TAG]);
    await this.run.watchers.join(server);
    return new Response(null, { status: 101, webSocket: client });
  }

  override async webSocketMessage(ws: WebSocket, raw: string | ArrayBuffer): Promise<void> {
    const count = (kind: SocketKind) => pool(this.env).countRateLimited(kind);
    if (this.ctx.getTags(ws).includes(WATCH_TAG)) {
      // Watchers only listen: a frame from one is metered, then ignored.
      admitFrame({ meters: this.run.meters, kind: "watch", limited: () => count("watch") }, ws, raw);
      return;
    }
    this.run.profile?.message(raw);
    // A runner closed for its rate is detached at once, not when its close handshake ends.
    const limited = (ws: WebSocket) => Promise.all([count("run"), this.dropSocket(ws)]);
    const { store, config, blobSize, meters, conduct } = this.run;
    const gate = { meters, kind: "run" as const, limited };
    await receiveFrame(this.ctx, ws, raw, gate, {
      hello: async (ws, hello) => {
        const heartbeatMs = config.leaseGraceMs;
        send(ws, { type: "welcome", protocol: PROTOCOL_VERSION, run: this.ctx.id.toString(), heartbeatMs });
        if (isFinal(store.status())) {
          // The runner may have come because the pool still has the run's demand: withdrawn
          // unless the pool confirmed it was (so a device that keeps coming costs no pool call).
          finishSocket(ws, store.status());
          return perform(this.run.effects, [{ type: "demand", classes: [] }]);
        }
        const id = hello.runner.id;
        conduct.hello(id);
        const attached = (async () => {
          const cooled = await pool(this.env)
            .cooledUntil(deviceOfRunner(id))
            .catch((e: unknown) => (console.error("asking the pool of a cool-down", e), null));
          await this.apply(attachEvent(hello, cooled));
        })();
        this.attaching.set(ws, attached);
        try {
          await attached;
        } finally {
          this.attaching.delete(ws);
        }
      },
      frame: async (ws, runner, msg) => {
        await this.attaching.get(ws)?.catch(() => undefined);
        if (msg.type === "log") return this.run.logs.append(runner, msg);
        const next = await frameEvent(runner, msg, blobSize);
        if ("reply" in next) send(ws, next.reply);
        else await this.apply(next.event);
      },
    });
  }

  override async webSocketClose(ws: WebSocket): Promise<void> {
    await this.dropSocket(ws);
  }

  override async webSocketError(ws: WebSocket): Promise<void> {
    await this.dropSocket(ws);
  }

  /** A runner's last socket closed: its attempts are lost. */
  private async dropSocket(ws: WebSocket): Promise<void> {
    try {
      const runner = lastSocketOf(this.ctx, ws);
      if (runner && this.live()) await this.apply({ type: "detach", runner });
    } catch (e) {
      console.error("DagRun webSocketClose", e);
    }
  }

  /**
   * Runs one event through the state machine in one transaction (its histograms observed in it),
   * marks the watchers and the index behind, performs the effects, then arms the alarm.
   */
  private async apply(given: RunEvent): Promise<void> {
    const { store, config, histograms, watchers, index, effects } = this.run;
    // Blobs this event may make the run hold are noted first, so that no sweep takes one it holds.
    const held = heldBlobs(given, store);
    if (held.length > 0) await recordRefs(this.env.DB, this.ctx.id.toString(), held);
    const event = await withBlobs(given, store, this.env.BLOBS);
    const now = Date.now();
    let out;
    try {
      out = this.ctx.storage.transactionSync(() => {
        const out = transition(store, event, now, config);
        histograms.observe(event, out, now);
        return out;
      });
    } catch (e) {
      store.forget(); // what it kept in memory of the writes SQLite just rolled back
      throw e;
    }
    if (!isFinal(store.status())) {
      watchers.changed();
      index.changed();
    }
    await perform(effects, out);
    // The logs of attempts this event ended leave the run's SQLite (run-logs.ts says why here).
    await this.run.logs.settle();
    await this.arm(now);
  }

  private async arm(now: number): Promise<void> {
    const { store, clock, config, watchers, index } = this.run;
    if (!store.meta("id")) return;
    if (isFinal(store.status())) return clock.arm(now, [index.due()]);
    const sweep = runnerSockets(this.ctx).length > 0 ? now + config.leaseGraceMs / 2 : null;
    await clock.arm(now, [store.nextDeadline(), sweep, watchers.due(), index.due(), demandRetryAt(store)]);
  }

  /** The run's demand now, as the machine's `demand` effect would say it (none once paused or ended). */
  private demandNow(): DemandClass[] {
    const { store } = this.run;
    return this.live() && store.status() !== "paused" ? demand(store, store.counts().ready) : [];
  }

  /** A run lives here and has not ended. */
  private live(): boolean {
    return Boolean(this.run.store.meta("id")) && !isFinal(this.run.store.status());
  }

  private noRun() {
    return refusal("not_found", `no run ${this.ctx.id.toString()}`);
  }
}

/**
 * The blobs `event` may make the run hold: the files of its inputs and the outputs it reuses at
 * its start, the outputs of results of attempts leased to their runner, the cache's hits.
 */
function heldBlobs(event: RunEvent, store: SqlStore): string[] {
  if (event.type === "start") {
    const files = Object.values(event.plan.inputs).flatMap((input) =>
      "file" in input ? fileBlobs(input.file) : "files" in input ? input.files.flatMap(fileBlobs) : [],
    );
    const seeds = (event.seeds ?? []).flatMap((s) => (s.output instanceof Uint8Array ? [] : [s.output.sha256]));
    return [...files, ...seeds];
  }
  if (event.type === "results")
    return event.results.flatMap((r) => {
      if (!r.ok || !r.outputRef) return [];
      const row = store.task(r.task);
      const leased = row?.state === "leased" && row.runner === event.runner && row.attempt === r.attempt;
      return leased ? [r.outputRef.sha256] : [];
    });
  if (event.type === "looked_up")
    return event.hits.flatMap((h) => (h.output instanceof Uint8Array ? [] : [h.output.sha256]));
  return [];
}

/**
 * The event with the bytes of the output blobs in it that a `map: { over }` maps over, read from
 * blob storage (the machine reads only its own storage; inline outputs it has). Only a result of
 * an attempt leased to the runner that sends it, or a cache hit of a task in lookup, is read, each
 * blob once: a frame of stray results costs no reads.
 */
async function withBlobs(event: RunEvent, store: SqlStore, blobs: R2Bucket): Promise<RunEvent> {
  if (event.type !== "results" && event.type !== "looked_up" && event.type !== "start") return event;
  // Asked only once the run has its plan: the sources are read once and kept (a start has its plan).
  const sources =
    event.type === "start" ? new Set(event.plan.nodes.flatMap((n) => (n.over ? [n.over] : []))) : store.overSources();
  if (sources.size === 0) return event;
  const wanted = new Set<string>();
  const source = (task: string) => sources.has(parseTaskKey(task).node);
  if (event.type === "start") {
    for (const s of event.seeds ?? [])
      if (!(s.output instanceof Uint8Array) && source(s.task)) wanted.add(s.output.sha256);
  } else if (event.type === "results") {
    for (const r of event.results) {
      if (!r.ok || !r.outputRef || !source(r.task)) continue;
      const row = store.task(r.task);
      if (row?.state === "leased" && row.runner === event.runner && row.attempt === r.attempt)
        wanted.add(r.outputRef.sha256);
    }
  } else {
    for (const h of event.hits)
      if (!(h.output instanceof Uint8Array) && source(h.task) && store.task(h.task)?.state === "lookup")
        wanted.add(h.output.sha256);
  }
  if (wanted.size === 0) return event;
  const read = new Map<string, Uint8Array>();
  await Promise.all(
    [...wanted].map(async (sha256) => {
      try {
        const object = await blobs.get(outputKey(sha256));
        if (object) read.set(sha256, new Uint8Array(await object.arrayBuffer()));
      } catch (e) {
        console.error(`reading the output blob sha256:${sha256} a map goes over`, e);
      }
    }),
  );
  return { ...event, blobs: read };
}

function found<T>(value: T | null, otherwise: Answer<T>): Answer<T> {
  return value === null ? otherwise : ok(value);
}
