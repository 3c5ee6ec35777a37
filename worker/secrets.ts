/**
 * Random secrets and their hashes, for the tokens and credentials the coordinator mints
 * (devices.ts, tokens.ts). Only SHA-256 hashes are stored: the secrets are random enough that a
 * fast hash cannot be reversed, and a lookup by hash leaks nothing a timing side channel could use.
 */
const encoder = new TextEncoder();

/** The SHA-256 of `text`, in hex. */
export async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", encoder.encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** `bytes` random bytes, base64url without padding. */
export function random(bytes: number): string {
  const buf = crypto.getRandomValues(new Uint8Array(bytes));
  return btoa(String.fromCharCode(...buf))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

/** `bytes` random bytes, in hex. */
export const hex = (bytes: number) =>
  [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
