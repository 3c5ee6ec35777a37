// docs/deploy.md names what wrangler.toml uses: the D1 database and the R2 bucket its commands
// create and migrate, the migrations folder; and every migration in that folder is a numbered
// SQL file. A rename on one side fails here.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../../dev/local";

const toml = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
const deploy = readFileSync(join(ROOT, "docs/deploy.md"), "utf8");

/** The value of `key = "…"` in the wrangler.toml table that starts with `[[table]]`. */
function setting(table: string, key: string): string {
  const start = toml.indexOf(`[[${table}]]`);
  expect(start, `wrangler.toml has a [[${table}]]`).toBeGreaterThanOrEqual(0);
  const body = toml.slice(start).split(/\n\[/)[0]!;
  const value = new RegExp(`^${key}\\s*=\\s*"([^"]+)"`, "m").exec(body)?.[1];
  expect(value, `[[${table}]] ${key}`).toBeDefined();
  return value!;
}

/** The commands of the shell blocks of docs/deploy.md. */
const commands = [...deploy.matchAll(/```sh\n([\s\S]*?)```/g)].flatMap((m) =>
  m[1]!
    .split("\n")
    .map((l) => l.replace(/\s+#.*$/, "").trim())
    .filter(Boolean),
);

describe("docs/deploy.md and wrangler.toml", () => {
  it("create, migrate and name the same D1 database and R2 bucket", () => {
    const database = setting("d1_databases", "database_name");
    const bucket = setting("r2_buckets", "bucket_name");
    expect(commands).toContain(`npx wrangler d1 create ${database}`);
    expect(commands).toContain(`npx wrangler r2 bucket create ${bucket}`);
    expect(commands).toContain(`npx wrangler d1 migrations apply ${database} --remote`);
    expect(commands).toContain(`npx wrangler d1 migrations apply ${database} --local`);
    // Every wrangler command of the page that names a database or a bucket names these.
    for (const c of commands.filter((c) => /wrangler (d1|r2)/.test(c)))
      expect(
        [database, bucket].some((name) => c.split(/\s+/).includes(name)),
        c,
      ).toBe(true);
    expect(deploy).toContain(`the D1 database \`${database}\` and the R2 bucket\n\`${bucket}\``);
  });

  it("keep the schema in numbered SQL migrations in the folder wrangler.toml names", () => {
    const dir = setting("d1_databases", "migrations_dir");
    const files = readdirSync(join(ROOT, dir)).sort();
    expect(files.length).toBeGreaterThan(0);
    files.forEach((f, i) => expect(f).toMatch(new RegExp(`^${String(i + 1).padStart(4, "0")}_[a-z0-9_]+\\.sql$`)));
  });

  it("leave no D1 table to be created by the Worker: CREATE TABLE is only in migrations and the objects' own SQLite", () => {
    const sources = (dir: string): string[] =>
      readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
      );
    const creating = sources("worker").filter((f) =>
      /CREATE\s+(TABLE|INDEX)/i.test(readFileSync(join(ROOT, f), "utf8")),
    );
    // The Durable Objects' SQLite (their constructors), never D1.
    expect(
      creating.every((f) => f.startsWith("worker/durable/")),
      creating.join(", "),
    ).toBe(true);
  });
});
