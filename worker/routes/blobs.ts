/**
 * `/api/blobs`: content-addressed storage for large task outputs. Runners upload an output
 * larger than the inline limit here before reporting it (`outputRef`), and fetch the blobs a
 * task's inputs refer to (`?run=<id>`: a device gets only what its leases in that run name). R2
 * checks the sha256 on upload, so a blob is what its name says. The
 * type a runner sends is not kept: blobs are served as opaque attachments, and a task's output
 * route decides the type from the bytes.
 */
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { requireDevice, type CallerEnv } from "../auth.js";
import { MAX_OUTPUT_BYTES } from "../run/machine.js";
import { readBytes } from "../http.js";
import { outputKey } from "../blob-keys.js";
import { leaseNames } from "./run-stub.js";
import { inputBlobSizes, registerInputBlob } from "../db.js";
import { recordBlob } from "../retention.js";

function shaOf(ref: string): string {
  const m = /^sha256:([0-9a-f]{64})$/.exec(ref);
  if (!m) throw new HTTPException(400, { message: `blob names are sha256:<64 lower-case hex digits>, not "${ref}"` });
  return m[1]!;
}

export const blobs = new Hono<CallerEnv>()
  // The operator asks which input blobs it uploaded already; a device, of a blob it may fetch.
  .on("HEAD", "/:ref", requireDevice({ orScope: "read" }), async (c) => {
    const sha256 = shaOf(c.req.param("ref"));
    await leaseNames(c, { kind: "blob", sha256 });
    const size =
      c.get("caller").kind === "api"
        ? (await inputBlobSizes(c.env.DB, [sha256])).get(sha256)
        : (await c.env.BLOBS.head(outputKey(sha256)))?.size;
    if (size === undefined) return c.body(null, 404);
    return c.body(null, 200, { "Content-Length": String(size), "Content-Type": "application/octet-stream" });
  })
  .put("/:ref", requireDevice({ orScope: "submit" }), async (c) => {
    const sha256 = shaOf(c.req.param("ref"));
    await leaseNames(c, { kind: "output", sha256 });
    const length = Number(c.req.header("Content-Length") ?? NaN);
    // With a declared length the body streams into R2 unbuffered; R2 checks the hash either way.
    const streamed = Number.isInteger(length) && length <= MAX_OUTPUT_BYTES && c.req.raw.body !== null;
    if (length > MAX_OUTPUT_BYTES)
      throw new HTTPException(413, { message: `a blob is at most ${MAX_OUTPUT_BYTES} bytes` });
    const body = streamed ? c.req.raw.body! : await readBytes(c.req.raw, MAX_OUTPUT_BYTES);
    const fresh = (await c.env.BLOBS.head(outputKey(sha256))) === null;
    let object: R2Object | null;
    try {
      object = await c.env.BLOBS.put(outputKey(sha256), body, { sha256 });
    } catch (e) {
      throw new HTTPException(400, { message: `the body does not match sha256:${sha256}: ${(e as Error).message}` });
    }
    const size = object?.size ?? 0;
    // Kept while a run, a cache entry or a module holds it, and for BLOB_GRACE after this (retention.ts).
    await recordBlob(c.env.DB, sha256, size, fresh);
    if (c.get("caller").kind === "api") await registerInputBlob(c.env.DB, sha256, size);
    return c.json({ sha256, size });
  })
  .get("/:ref", requireDevice({ orScope: "read" }), async (c) => {
    const sha256 = shaOf(c.req.param("ref"));
    await leaseNames(c, { kind: "blob", sha256 });
    const object = await c.env.BLOBS.get(outputKey(sha256));
    if (!object) throw new HTTPException(404, { message: `no blob ${c.req.param("ref")}` });
    const headers = {
      "Content-Type": "application/octet-stream",
      "Content-Length": String(object.size),
      "Content-Disposition": `attachment; filename="${sha256}.bin"`,
    };
    return new Response(object.body, { headers });
  });
