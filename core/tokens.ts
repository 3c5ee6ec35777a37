/**
 * Scoped API tokens (`/api/tokens`, `distro tokens`): what each scope may do, for the coordinator
 * that checks them, the CLI that mints them and the page that hides what its token may not use.
 * Scopes are ordered: a token may do what its scope and every scope below it may.
 *
 * - `read`: the page, runs and their outputs and logs, the runner pool, modules and blobs by
 *   name or hash, `/metrics`.
 * - `submit`: also runs (submit, and cancel, pause, resume, retry and delete those it submitted),
 *   modules and input blobs (upload).
 * - `admin`: everything, devices, enrollments and tokens included. `API_TOKEN` is an admin token.
 */
export const SCOPES = ["read", "submit", "admin"] as const;
export type TokenScope = (typeof SCOPES)[number];

/** Whether a token of scope `has` may do what needs scope `needs`. */
export const covers = (has: TokenScope, needs: TokenScope): boolean => SCOPES.indexOf(has) >= SCOPES.indexOf(needs);

/** A token's name: 1 to 64 of letters, digits, space and `_ . : -`. */
export const TOKEN_NAME = /^[A-Za-z0-9_.: -]{1,64}$/;

/** The longest lifetime a token may be given (a token without one does not expire). */
export const TOKEN_MAX_TTL_MS = 400 * 86_400_000;

/**
 * What every scoped token starts with; the rest is base64url, so it holds no dot, where a device
 * credential (`<device>.<secret>`) always does, whatever its device is called.
 */
export const TOKEN_PREFIX = "dat_";
