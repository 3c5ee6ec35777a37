// The watchers of a run (worker/run-host/watchers.ts) through a fake host: the snapshot, updates
// coalesced to one per WATCH_MS with the changed nodes and tasks, the last one on the run's end,
// no log while nobody watches, and a due update that survives an eviction.
import { describe, expect, it } from "vitest";
import type { RunSummary, RunView } from "../../core/api";
import { CLOSE } from "../../core/protocol/messages";
import { MAX_TASK_CHANGES, type WatchMessage } from "../../core/protocol/watch";
import type { RunStatus, TaskState } from "../../core/status";
import { WATCH_MS, Watchers, type WatcherSocket } from "../../worker/run-host/watchers";
import { metaMap } from "../helpers/meta-map";

class FakeSocket implements WatcherSocket {
  readonly sent: WatchMessage[] = [];
  closed: { code: number; reason: string } | null = null;
  broken = false;
  send(text: string) {
    if (this.broken) throw new Error("gone");
    this.sent.push(JSON.parse(text) as WatchMessage);
  }
  close(code: number, reason: string) {
    this.closed = { code, reason };
  }
}

const summary = (status: RunStatus = "running"): RunSummary => ({
  id: "run",
  name: "test",
  status,
  created_at: 0,
  updated_at: 0,
  finished_at: null,
  counts: {
    blocked: 0,
    lookup: 0,
    ready: 1,
    waiting: 0,
    backoff: 0,
    leased: 1,
    succeeded: 0,
    failed: 0,
    skipped: 0,
    cancelled: 0,
  },
  tasks_total: 2,
  retry_of: null,
  submitted_by: null,
});

/** A run of nodes a and b, whose counts the test sets; `clock.now` is the time. */
function setup(meta = metaMap()) {
  const sockets: FakeSocket[] = [];
  const clock = { now: 1000 };
  const state = { status: "running" as RunStatus };
  const counts: Record<string, Partial<Record<TaskState, number>>> = { a: { leased: 1 }, b: { ready: 1 } };
  const asked: (string[] | undefined)[] = [];
  const watchers = new Watchers({
    sockets: () => sockets,
    meta,
    now: () => clock.now,
    summary: () => Promise.resolve(summary(state.status)),
    view: () =>
      Promise.resolve<RunView>({
        ...summary(state.status),
        nodes: ["a", "b"].map((id) => ({
          id,
          module: "m",
          sha256: "f".repeat(64),
          deps: [],
          instances: null,
          requires: null,
          counts: counts[id]!,
        })),
        tasks: [],
      }),
    nodeCounts: (nodes) => {
      asked.push(nodes);
      return new Map((nodes ?? ["a", "b"]).map((id) => [id, counts[id]!]));
    },
  });
  return { watchers, sockets, clock, state, meta, asked };
}

const updates = (ws: FakeSocket) => ws.sent.filter((m) => m.type === "update");

describe("watchers", () => {
  it("sends a new watcher the snapshot (nodes without sha256), closing it at once on an ended run", async () => {
    const { watchers, state } = setup();
    const ws = new FakeSocket();
    await watchers.join(ws);
    expect(ws.sent).toEqual([
      {
        type: "snapshot",
        run: summary(),
        nodes: [
          { id: "a", module: "m", deps: [], instances: null, requires: null, counts: { leased: 1 } },
          { id: "b", module: "m", deps: [], instances: null, requires: null, counts: { ready: 1 } },
        ],
      },
    ]);
    expect(ws.closed).toBeNull();
    state.status = "succeeded";
    const late = new FakeSocket();
    await watchers.join(late);
    expect(late.closed).toEqual({ code: CLOSE.finished, reason: "run succeeded" });
  });

  it("coalesces changes into one update due WATCH_MS after the first, with changed nodes and tasks", async () => {
    const { watchers, sockets, clock, asked } = setup();
    sockets.push(new FakeSocket(), new FakeSocket());
    await watchers.join(sockets[0]!);
    watchers.task("a", "a", "leased");
    watchers.changed();
    expect(watchers.due()).toBe(1000 + WATCH_MS);
    clock.now += 100;
    watchers.task("a", "a", "succeeded");
    watchers.task("b", "b", "leased");
    watchers.changed();
    expect(watchers.due()).toBe(1000 + WATCH_MS);
    await watchers.flush(false);
    expect(watchers.due()).toBeNull();
    expect(asked).toEqual([["a", "b"]]);
    for (const ws of sockets) {
      expect(updates(ws)).toEqual([
        {
          type: "update",
          run: summary(),
          nodes: [
            { id: "a", counts: { leased: 1 } },
            { id: "b", counts: { ready: 1 } },
          ],
          tasks: [
            { id: "a", state: "succeeded" },
            { id: "b", state: "leased" },
          ],
        },
      ]);
    }
    // Nothing new: no update is due, and a flush sends nothing.
    watchers.changed();
    expect(watchers.due()).toBeNull();
    await watchers.flush(false);
    expect(updates(sockets[0]!)).toHaveLength(1);
  });

  it("lists no tasks after a bulk move or past MAX_TASK_CHANGES; every node after a move of all", async () => {
    const { watchers, sockets, asked } = setup();
    sockets.push(new FakeSocket());
    await watchers.join(sockets[0]!);
    watchers.moved("b");
    await watchers.flush(false);
    for (let i = 0; i <= MAX_TASK_CHANGES; i++) watchers.task("a", `a[${i}]`, "leased");
    await watchers.flush(false);
    watchers.movedAll();
    await watchers.flush(false);
    expect(updates(sockets[0]!).map((u) => u.type === "update" && u.tasks)).toEqual([null, null, null]);
    expect(asked).toEqual([["b"], ["a"], undefined]);
  });

  it("keeps no changes while nobody watches, and stops keeping them when the last watcher has gone", async () => {
    const { watchers, sockets } = setup();
    watchers.task("a", "a", "leased");
    watchers.changed();
    expect(watchers.due()).toBeNull();
    const ws = new FakeSocket();
    sockets.push(ws);
    await watchers.join(ws);
    sockets.pop();
    watchers.task("a", "a", "succeeded");
    watchers.changed();
    await watchers.flush(false);
    expect(updates(ws)).toEqual([]);
    watchers.task("b", "b", "leased");
    watchers.changed();
    expect(watchers.due()).toBeNull();
  });

  it("sends the last update at the end, even with nothing new, and closes every socket, a broken one too", async () => {
    const { watchers, sockets, state } = setup();
    const broken = new FakeSocket();
    broken.broken = true;
    sockets.push(broken, new FakeSocket());
    await watchers.join(sockets[1]!);
    state.status = "failed";
    await watchers.flush(true);
    expect(updates(sockets[1]!)).toMatchObject([{ run: { status: "failed" }, nodes: [], tasks: [] }]);
    expect(sockets[1]!.closed).toEqual({ code: CLOSE.finished, reason: "run failed" });
  });

  it("keeps the due time in meta: after an eviction the update is still due, and reports every node", async () => {
    const meta = metaMap();
    const first = setup(meta);
    first.sockets.push(new FakeSocket());
    await first.watchers.join(first.sockets[0]!);
    first.watchers.task("a", "a", "leased");
    first.watchers.changed();
    expect(meta.values.get("watch_due")).toBe(String(1000 + WATCH_MS));

    const again = setup(meta);
    again.sockets.push(first.sockets[0]!);
    again.watchers.restore();
    expect(again.watchers.due()).toBe(1000 + WATCH_MS);
    await again.watchers.flush(false);
    expect(again.asked).toEqual([undefined]);
    expect(updates(first.sockets[0]!)).toMatchObject([{ tasks: null, nodes: [{ id: "a" }, { id: "b" }] }]);
    expect(meta.values.has("watch_due")).toBe(false);
  });

  it("sends an update when only the run's status changed (a pause moves no task)", async () => {
    const { watchers, sockets, state } = setup();
    sockets.push(new FakeSocket());
    await watchers.join(sockets[0]!);
    watchers.changed();
    expect(watchers.due()).toBeNull();
    state.status = "paused";
    watchers.statusChanged();
    expect(watchers.due()).toBe(1000 + WATCH_MS);
    await watchers.flush(false);
    expect(updates(sockets[0]!)).toEqual([{ type: "update", run: summary("paused"), nodes: [], tasks: [] }]);
  });
});
