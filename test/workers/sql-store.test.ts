// The run state machine's property (test/helpers/machine-property.ts) over the production
// SqlStore, inside a DagRun object in workerd: the SQLite that enforces Durable Objects' limits
// (100 bound parameters, 100 KB statements), each transition in one transactionSync as
// DagRun.apply does. Every generated case starts from empty tables: dropping them takes a fifth
// of the time a new object per case does.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { SqlStore } from "../../worker/durable/sql-store";
import { checkMachineProperty, type PropertyHost } from "../helpers/machine-property";
import { halfStaleBatch, stealRacingStart, type Apply } from "../helpers/prefetch-scenarios";
import { plan } from "../helpers/run-fixtures";
import { transition } from "../../worker/run/machine";

/** Runs `check` inside a new DagRun, with a host whose stores are SqlStores made by `store`. */
async function inDagRun(store: (sql: SqlStorage) => SqlStore, check: (host: PropertyHost) => void): Promise<void> {
  const runs = env.DAG_RUN;
  await runInDurableObject(runs.get(runs.newUniqueId()), (_run, state) =>
    check({
      fresh: () => store(emptied(state.storage.sql)),
      transaction: (apply) => state.storage.transactionSync(apply),
    }),
  );
}

/** Drops the object's own tables (not SQLite's nor Cloudflare's), so a new store lays out its schema. */
function emptied(sql: SqlStorage): SqlStorage {
  const tables = sql
    .exec<{ name: string }>(
      `SELECT name FROM sqlite_master WHERE type = 'table'
       AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\'`,
    )
    .toArray();
  for (const { name } of tables) sql.exec(`DROP TABLE "${name}"`);
  return sql;
}

describe("property over SqlStore in a DagRun", () => {
  it("runs every task to one accepted result, each after all it depends on, with its inputs", async () => {
    // More cases than the unit test's 200: they cost about 5 ms each here.
    await inDagRun(
      (sql) => new SqlStore(sql),
      (host) => checkMachineProperty(host, { numRuns: 500 }),
    );
  }, 60_000);

  it("fails over a store that gives a mapped node's outputs out of index order", async () => {
    class Reversed extends SqlStore {
      override outputs(node: string) {
        return super.outputs(node).reverse();
      }
    }
    await inDagRun(
      (sql) => new Reversed(sql),
      (host) => expect(() => checkMachineProperty(host, { shrink: false })).toThrow(/Property failed/),
    );
  });
});

describe("prefetch and stealing over SqlStore in a DagRun", () => {
  /**
   * Runs a scenario in a new DagRun: each transition in one transactionSync, as DagRun.apply
   * does; `statements()` counts the SQL statements run so far.
   */
  async function scenario(
    play: (store: SqlStore, apply: Apply, db: { sql: SqlStorage; statements: () => number }) => void,
  ): Promise<void> {
    const runs = env.DAG_RUN;
    await runInDurableObject(runs.get(runs.newUniqueId()), (_run, state) => {
      let count = 0;
      const sql = emptied(state.storage.sql);
      const counted = new Proxy(sql, {
        get: (target, name) =>
          name === "exec"
            ? (query: string, ...bindings: SqlStorageValue[]) => (count++, target.exec(query, ...bindings))
            : (Reflect.get(target, name) as unknown),
      });
      const store = new SqlStore(counted);
      const apply: Apply = (event, now) => state.storage.transactionSync(() => transition(store, event, now));
      play(store, apply, { sql, statements: () => count });
    });
  }

  it("takes the valid half of a results frame that is half stale, and only that", () => scenario(halfStaleBatch));

  it("hands an idle runner only attempts the holder had not started when a steal races a start", () =>
    scenario(stealRacingStart));

  it("takes a frame of 1,024 results in a few statements, outputs byte for byte and stderr as sent", async () => {
    await scenario((store, apply, { sql, statements }) => {
      const config = { leaseGraceMs: 15_000, maxHeld: 4096 };
      transition(store, { type: "start", plan: plan(`tasks: [{ id: w, module: m, map: { range: [0, 1024] } }]`) }, 1);
      transition(store, { type: "attach", runner: "r", name: "r", want: 1024, holding: [], slots: 1024 }, 2, config);
      expect(store.leasedTo("r")).toHaveLength(1024);
      // 1 KiB of every byte value each, 2 MiB as hex: more than one bound value takes; four of 4 KiB, bound as bytes.
      const size = (i: number) => (i % 300 === 0 ? 4096 : 1024);
      const bytes = (i: number) => Uint8Array.from({ length: size(i) }, (_, j) => (i + j) % 256);
      const results = Array.from({ length: 1024 }, (_, i) => ({
        task: `w[${i}]`,
        attempt: 1,
        ok: true,
        output: btoa(String.fromCharCode(...bytes(i))),
        stderr: `é ✓ ${i}`,
        durationMs: 1,
      }));
      const before = statements();
      apply({ type: "results", runner: "r", results, want: 0, received: 1024 }, 3);
      // The rows read in one; outputs, attempts and leases in bound values under 2 MB each; the run's end.
      expect(statements() - before).toBeLessThan(25);
      expect(store.status()).toBe("succeeded");
      const outputs = store.outputs("w");
      for (const i of [0, 1, 97, 300, 600, 900, 1000, 1023]) expect(outputs[i]).toEqual(bytes(i));
      const row = sql
        .exec<{ stderr: string; outcome: string }>(`SELECT stderr, outcome FROM attempts WHERE task = 'w[1000]'`)
        .one();
      expect(row).toEqual({ stderr: "é ✓ 1000", outcome: "succeeded" });
    });
  });
});
