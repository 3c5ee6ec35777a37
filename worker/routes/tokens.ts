/**
 * `/api/tokens`: scoped API tokens (core/tokens.ts says what each scope may do). An admin mints,
 * lists and revokes them; any good token may ask what it is (`/self`, which the page reads to
 * show only the controls its token may use). A token is shown once, in the answer that mints it.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import type { TokenCreated, TokenSelf, TokenView } from "../../core/api.js";
import { ttlMs } from "../../core/enrollment.js";
import { SCOPES, TOKEN_MAX_TTL_MS, TOKEN_NAME } from "../../core/tokens.js";
import { requireScope, type ApiCaller, type CallerEnv } from "../auth.js";
import { readJson } from "../http.js";
import { createToken, revokeToken, tokens as listTokens } from "../tokens.js";

const request = z.strictObject({
  name: z.string().regex(TOKEN_NAME, "a name is 1 to 64 of letters, digits, space and _ . : -"),
  scope: z.enum(SCOPES),
  ttl: z.union([z.string(), z.number().positive()]).optional(),
});

export const tokens = new Hono<CallerEnv>()
  .get("/self", requireScope("read"), (c) => {
    const { scope, token: id, name, expires_at } = c.get("caller") as ApiCaller;
    const token = id === "API_TOKEN" ? null : { id, name, expires_at };
    return c.json({ scope, token } satisfies TokenSelf);
  })
  .use(requireScope("admin"))
  .post("/", async (c) => {
    const { name, scope, ttl } = await readJson(c.req.raw, request, "token");
    const lifetime = ttl === undefined ? null : ttlMs(ttl, TOKEN_MAX_TTL_MS);
    if (lifetime === undefined)
      throw new HTTPException(400, {
        message: `bad token request: ttl: expected a duration from 1s to 400d such as "90d" (or seconds), got ${JSON.stringify(ttl)}; leave it out for a token that does not expire`,
      });
    const { view, token } = await createToken(c.env.DB, { name, scope, ttlMs: lifetime });
    return c.json({ ...view, token } satisfies TokenCreated, 201);
  })
  .get("/", async (c) => c.json({ tokens: await listTokens(c.env.DB) } satisfies { tokens: TokenView[] }))
  .delete("/:id", async (c) => {
    const view = await revokeToken(c.env.DB, c.req.param("id"));
    if (!view) throw new HTTPException(404, { message: `no token ${c.req.param("id")}` });
    return c.json(view satisfies TokenView);
  });
