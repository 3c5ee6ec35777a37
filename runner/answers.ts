/**
 * Reading the coordinator's refusals: its answers carry `{error: "..."}`, which the runner
 * prints as the reason (an enrollment used up, a revoked device) rather than a bare status.
 */

/** The `error` of a JSON answer body, else the start of the body as text (undefined when empty). */
export function errorText(body: string): string | undefined {
  try {
    const parsed = JSON.parse(body) as { error?: unknown };
    if (parsed && typeof parsed === "object" && typeof parsed.error === "string") return parsed.error;
  } catch {
    // not JSON: the text itself
  }
  return body.trim().slice(0, 200) || undefined;
}
