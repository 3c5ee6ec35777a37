/**
 * `/api/modules`: the module registry. Uploads are checked against the task ABI (a WASI
 * preview1 command with no other imports) and stored in R2 by sha256; the name is pinned to
 * that hash in D1. Runners fetch modules by hash here, for a run whose lease names them.
 */
import { Hono } from "hono";
import type { ModuleInfo, ModuleListing } from "../../core/api.js";
import { HTTPException } from "hono/http-exception";
import { requireDevice, requireScope, type CallerEnv } from "../auth.js";
import { listModules, moduleByName, registerModule } from "../db.js";
import { sha256Hex } from "../sha256.js";
import { checkTaskModule } from "../../core/wasm/inspect.js";
import { readBytes } from "../http.js";
import { moduleKey } from "../blob-keys.js";
import { leaseNames } from "./run-stub.js";

/** Largest module accepted. */
const MAX_MODULE_BYTES = 32 * 1024 * 1024;

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export const modules = new Hono<CallerEnv>()
  .get("/", requireScope("read"), async (c) => c.json({ modules: await listModules(c.env.DB) } satisfies ModuleListing))
  .put("/:name", requireScope("submit"), async (c) => {
    const name = c.req.param("name");
    if (!NAME.test(name)) {
      throw new HTTPException(400, {
        message: `invalid module name "${name}": use letters, digits, _, . and - (at most 128)`,
      });
    }
    const bytes = await readBytes(c.req.raw, MAX_MODULE_BYTES);
    const problems = checkTaskModule(bytes);
    if (problems.length > 0) {
      return c.json(
        {
          error: `module "${name}" is not a valid task`,
          problems: problems.map((message) => ({ path: name, line: 0, column: 0, message })),
        },
        400,
      );
    }
    const sha256 = await sha256Hex(bytes);
    await c.env.BLOBS.put(moduleKey(sha256), bytes, { sha256 });
    await registerModule(c.env.DB, name, sha256, bytes.length);
    return c.json({ name, sha256, size: bytes.length } satisfies ModuleInfo);
  })
  .get("/:ref", requireDevice({ orScope: "read" }), async (c) => {
    const ref = c.req.param("ref");
    if (c.get("caller").kind === "device") {
      if (!/^sha256:[0-9a-f]{64}$/.test(ref))
        throw new HTTPException(403, { message: "runners fetch modules by sha256:<hex>, for a run (?run=<id>)" });
      await leaseNames(c, { kind: "module", sha256: ref.slice(7) });
    }
    const sha256 = ref.startsWith("sha256:") ? ref.slice(7) : (await moduleByName(c.env.DB, ref))?.sha256;
    const object = sha256 && /^[0-9a-f]{64}$/.test(sha256) ? await c.env.BLOBS.get(moduleKey(sha256)) : null;
    if (!object) throw new HTTPException(404, { message: `no module ${ref}` });
    return new Response(object.body, { headers: { "Content-Type": "application/wasm", "X-Sha256": sha256! } });
  });
