// Runs before each workers test file: the D1 schema as `wrangler d1 migrations apply` makes it
// (migrations/), on the file's fresh storage. The Worker itself creates no D1 table.
import { applyD1Migrations, env } from "cloudflare:test";

await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);
