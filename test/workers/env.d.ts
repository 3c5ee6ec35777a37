// The bindings `env` from cloudflare:test carries: the Worker's own (wrangler.toml and the test
// vars), the D1 migrations that test/workers/migrate.ts applies, and a database without them.
import type { D1Migration } from "cloudflare:test";
import type { Env as WorkerEnv } from "../../worker/env";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {
      TEST_MIGRATIONS: D1Migration[];
      /** A D1 database without the schema. */
      EMPTY_DB: D1Database;
      /** Seconds per fuzz property (`npm run fuzz -- --seconds N`); unset in `npm test`. */
      FUZZ_SECONDS?: string;
    }
  }
}
