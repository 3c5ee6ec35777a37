/**
 * The runner this coordinator was built with, under a name that says which build it is:
 * `/runner-<first 12 hex digits of its sha256>.tgz`. The join commands name it so, because npx
 * keeps what it installed from a URL under that URL: a device that ran `npx <coordinator>/runner.tgz`
 * once would run that same runner after the coordinator was upgraded. `/runner.tgz` (a static
 * asset, with `/runner.tgz.sha256`) stays the current runner under a fixed name.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import type { Env } from "../env.js";

/** The served runner's build (12 hex digits of its sha256), or null when the build wrote none. */
export async function runnerBuild(env: Env, url: string): Promise<string | null> {
  const res = await env.ASSETS.fetch(new URL("/runner.tgz.sha256", url));
  if (!res.ok) return null;
  return /^([0-9a-f]{12})[0-9a-f]{52}\b/.exec(await res.text())?.[1] ?? null;
}

export const runnerPackage = new Hono<{ Bindings: Env }>().get("/:file{runner-[0-9a-f]{12}\\.tgz}", async (c) => {
  const build = await runnerBuild(c.env, c.req.url);
  const asked = c.req.param("file").slice("runner-".length, -".tgz".length);
  if (asked !== build)
    throw new HTTPException(404, {
      message: `this coordinator serves runner ${build ?? "(none: run npm run build)"}, not ${asked}; /runner.tgz is always the current one`,
    });
  const tarball = await c.env.ASSETS.fetch(new URL("/runner.tgz", c.req.url));
  return new Response(tarball.body, {
    status: tarball.status,
    headers: { "Content-Type": "application/gzip", "Cache-Control": "public, max-age=31536000, immutable" },
  });
});
