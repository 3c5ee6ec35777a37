// The run state machine's property (test/helpers/machine-property.ts) over the production
// SqlStore, inside a DagRun object in workerd: the SQLite that enforces Durable Objects' limits
// (100 bound parameters, 100 KB statements), each transition in one transactionSync as
// DagRun.apply does. Every generated case starts from empty tables: dropping them takes a fifth
// of the time a new object per case does.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { SqlStore } from "../../worker/durable/sql-store";
import { checkMachineProperty, type PropertyHost } from "../helpers/machine-property";

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
