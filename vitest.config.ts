import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
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
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            // A heartbeat of two minutes: a test that times device reports against the half
            // heartbeat (limits.test.ts) must not see one pass while a loaded machine runs it.
            miniflare: {
              bindings: {
                API_TOKEN: "test-api-token",
                RUNNER_TOKEN: "test-runner-token",
                HEARTBEAT_TIMEOUT_MS: "120000",
              },
            },
          }),
        ],
        test: { name: "workers", include: ["test/workers/**/*.test.ts"] },
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
