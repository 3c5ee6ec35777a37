/**
 * Request bodies and output responses shared by the routes: bodies are read with a size limit,
 * and task outputs (inline or from R2) are served as the type their bytes show, never as what
 * the runner that produced them claimed.
 */
import { HTTPException } from "hono/http-exception";
import type { z } from "zod";
import { outputType } from "../core/abi.js";

/**
 * A small JSON body (at most 16 KiB; an empty one is `{}`) checked against `schema`: 400 for one
 * that is not JSON, or `bad <what> request: <field>: <why>` for one the schema refuses.
 */
export async function readJson<S extends z.ZodType>(request: Request, schema: S, what: string): Promise<z.output<S>> {
  const text = await readText(request, 16 * 1024);
  let body: unknown;
  try {
    body = text.trim() === "" ? {} : JSON.parse(text);
  } catch (e) {
    throw new HTTPException(400, { message: `the body is not JSON: ${(e as Error).message}` });
  }
  const parsed = schema.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = issue.path.length ? `${issue.path.join(".")}: ` : "";
    throw new HTTPException(400, { message: `bad ${what} request: ${where}${issue.message}` });
  }
  return parsed.data;
}

/** Reads a text body, refusing one larger than `limit` bytes with 413. */
export async function readText(request: Request, limit: number): Promise<string> {
  return new TextDecoder().decode(await readBytes(request, limit));
}

/** Reads a body, refusing one larger than `limit` bytes with 413 (without buffering past it). */
export async function readBytes(request: Request, limit: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("Content-Length") ?? "0");
  const tooLarge = () => new HTTPException(413, { message: `body exceeds the limit of ${limit} bytes` });
  if (declared > limit) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = (request.body as ReadableStream<Uint8Array>).getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * An output as a response: an image or JSON inline, anything else as an attachment named after
 * the task (`fileName` is reduced to safe characters).
 */
export function outputResponse(bytes: Uint8Array, fileName: string, headers: Record<string, string> = {}): Response {
  const { type, attachment } = outputType(bytes);
  const all: Record<string, string> = { "Content-Type": type, "Content-Length": String(bytes.length), ...headers };
  if (attachment)
    all["Content-Disposition"] = `attachment; filename="${fileName.replace(/[^A-Za-z0-9_.-]/g, "_")}.bin"`;
  return new Response(bytes, { headers: all });
}
