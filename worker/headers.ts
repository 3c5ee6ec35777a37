/**
 * Security headers on every response the Worker makes. Static assets are served before the
 * Worker runs, so `public/_headers` repeats the page's policy for them (a unit test keeps the
 * two equal). Outputs and blobs come from devices nobody vouches for: under `nosniff` and the
 * API's sandboxing policy, no byte the coordinator serves can become a document that runs script.
 */

/** The status page and its assets: scripts and styles from the coordinator only, no inline code. */
export const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "worker-src 'self'",
  "img-src 'self' blob: data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Everything else (JSON, outputs, blobs, modules, metrics, errors): nothing may load or run. */
export const API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

/** Headers every response carries. */
const COMMON_HEADERS: Readonly<Record<string, string>> = {
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
};

/**
 * Adds the common headers, and `csp` unless the response already has a policy (assets come with
 * the page's). A WebSocket upgrade is left alone; a response with immutable headers is copied.
 */
export function secured(res: Response, csp: string): Response {
  if (res.status === 101) return res;
  let out = res;
  try {
    apply(out.headers, csp);
  } catch {
    out = new Response(res.body, res);
    apply(out.headers, csp);
  }
  return out;
}

function apply(headers: Headers, csp: string): void {
  for (const [name, value] of Object.entries(COMMON_HEADERS)) headers.set(name, value);
  if (!headers.has("Content-Security-Policy")) headers.set("Content-Security-Policy", csp);
}
