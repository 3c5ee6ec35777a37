/**
 * `/api/enrollments`: the operator's side of letting a device join. An enrollment is a token
 * good for `uses` devices until it expires; its answer carries the one-line command that installs
 * the runner from this coordinator and joins with it, per platform. Tokens are shown once.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import type { EnrollmentCreated, EnrollmentView, JoinCommands } from "../../core/api.js";
import { ENROLLMENT_LIMITS, LABEL, ttlMs } from "../../core/enrollment.js";
import { requireScope, type CallerEnv } from "../auth.js";
import { createEnrollment, enrollments as listEnrollments, revokeEnrollment } from "../devices.js";
import { readJson } from "../http.js";
import { runnerBuild } from "./runner-package.js";

const request = z.strictObject({
  labels: z
    .array(z.string().regex(LABEL, "a label is 1 to 64 of letters, digits, _ . : -"))
    .max(ENROLLMENT_LIMITS.labels)
    .default([]),
  uses: z.number().int().min(1).max(ENROLLMENT_LIMITS.uses).default(1),
  ttl: z.union([z.string(), z.number().positive()]).default("1h"),
  trusted: z.boolean().default(false),
});

/**
 * The commands that install the runner from `origin` and join with `token`: the runner of this
 * very build (runner-package.ts), or the current one when the build is unknown.
 */
function joinCommands(origin: string, token: string, build: string | null): JoinCommands {
  const run = `npx --yes ${origin}/${build ? `runner-${build}` : "runner"}.tgz --coordinator ${origin}`;
  return {
    unix: `DISTRO_ENROLL=${token} ${run}`,
    powershell: `$env:DISTRO_ENROLL="${token}"; ${run}`,
    termux: `pkg install -y nodejs && DISTRO_ENROLL=${token} ${run}`,
  };
}

export const enrollments = new Hono<CallerEnv>()
  .use(requireScope("admin"))
  .post("/", async (c) => {
    const { labels, uses, ttl, trusted } = await readJson(c.req.raw, request, "enrollment");
    const lifetime = ttlMs(ttl);
    if (lifetime === undefined)
      throw new HTTPException(400, {
        message: `bad enrollment request: ttl: expected a duration from 1s to 30d such as "1h" (or seconds), got ${JSON.stringify(ttl)}`,
      });
    const { view, token } = await createEnrollment(c.env.DB, {
      labels: [...new Set(labels)],
      uses,
      ttlMs: lifetime,
      trusted,
    });
    const commands = joinCommands(new URL(c.req.url).origin, token, await runnerBuild(c.env, c.req.url));
    return c.json({ ...view, token, command: commands.unix, commands } satisfies EnrollmentCreated, 201);
  })
  .get("/", async (c) =>
    c.json({ enrollments: await listEnrollments(c.env.DB) } satisfies { enrollments: EnrollmentView[] }),
  )
  .delete("/:id", async (c) => {
    const view = await revokeEnrollment(c.env.DB, c.req.param("id"));
    if (!view) throw new HTTPException(404, { message: `no enrollment ${c.req.param("id")}` });
    return c.json(view satisfies EnrollmentView);
  });
