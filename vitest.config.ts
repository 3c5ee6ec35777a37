import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

// Three vitest projects, all in `npm test`: pure modules and the runner's executor in Node
// (unit), the Worker and its Durable Objects in workerd (workers), and the real local coordinator
// with real runner processes, the CLI as a process and the status page in headless Chromium (e2e).
export default defineConfig({
  test: {
    projects: [
      {
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node", testTimeout: 20_000 },
      },
      {
        plugins: [
          cloudflareTest(async () => ({
            wrangler: { configPath: "./wrangler.toml" },
            // A heartbeat of two minutes: a test that times device reports against the half
            // heartbeat (limits.test.ts) must not see one pass while a loaded machine runs it.
            miniflare: {
              // A second database that no migration touches: test/workers/migrations.test.ts.
              d1Databases: { EMPTY_DB: "empty-db" },
              bindings: {
                API_TOKEN: "test-api-token",
                RUNNER_TOKEN: "test-runner-token",
                HEARTBEAT_TIMEOUT_MS: "120000",
                // The D1 schema, applied by test/workers/migrate.ts before each file's tests.
                TEST_MIGRATIONS: await readD1Migrations("./migrations"),
                // `npm run fuzz -- --seconds N` (scripts/fuzz.js): how long each fuzz property runs.
                FUZZ_SECONDS: process.env.FUZZ_SECONDS ?? "0",
              },
            },
          })),
        ],
        test: { name: "workers", include: ["test/workers/**/*.test.ts"], setupFiles: ["test/workers/migrate.ts"] },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 120_000,
          hookTimeout: 90_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
