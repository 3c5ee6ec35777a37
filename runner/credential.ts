/**
 * The device's saved credential: one JSON file per coordinator in `<config dir>/credentials/`,
 * readable by its owner only (0600, in folders of mode 0700), since whoever holds it can take
 * work as this device. Files appear whole (files.ts): two runner processes of the device
 * enrolling at once keep whichever credential was placed first. auth.ts decides when to load,
 * place or replace one. A revoked credential is left where it is: the runner started again is
 * refused again, saying so, until someone deletes the file and enrolls the device anew.
 */
import { chmodSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { EnrollAnswer } from "../core/api.js";
import { ENROLLMENT_LIMITS, LABEL } from "../core/enrollment.js";
import { place, replace } from "./files.js";

/** A device id as the coordinator makes them. */
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

const enrollAnswer = z.object({
  device: z.string().regex(DEVICE_ID),
  credential: z.string().max(512),
  labels: z.array(z.string().regex(LABEL)).max(ENROLLMENT_LIMITS.labels),
  trusted: z.boolean(),
  enrollment: z.string().max(128).nullable(),
});

const savedCredential = enrollAnswer.extend({
  /** The coordinator's origin (http: or https:), which the credential belongs to. */
  coordinator: z.string(),
  enrolled_at: z.number(),
});
export type SavedCredential = z.infer<typeof savedCredential>;

/** A credential is `<device>.<secret>`: the secret in base64url. */
const wellFormed = (c: { device: string; credential: string }) =>
  c.credential.startsWith(`${c.device}.`) && /^[A-Za-z0-9_-]{16,}$/.test(c.credential.slice(c.device.length + 1));

/**
 * The coordinator a credential belongs to: the URL's origin, with ws(s): read as http(s): (the
 * same server answers both).
 */
export function coordinatorOrigin(url: URL): string {
  const u = new URL(url.origin.replace(/^ws/, "http"));
  return u.origin;
}

/**
 * Where the credential for `coordinator` is kept: `credentials/<scheme>_<host>_<port>.json`,
 * the host's characters other than letters, digits, dots and dashes percent-encoded, so that
 * two coordinators never share a file.
 */
export function credentialFile(configDir: string, coordinator: URL): string {
  const u = new URL(coordinatorOrigin(coordinator));
  const scheme = u.protocol.slice(0, -1);
  const host = u.hostname.replace(/[^a-z0-9.-]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const port = u.port || (scheme === "https" ? "443" : "80");
  return join(configDir, "credentials", `${scheme}_${host}_${port}.json`);
}

/** Checks an answer of `POST /api/runners/enroll`; throws naming what is wrong. */
export function decodeEnrollAnswer(body: unknown): EnrollAnswer {
  const parsed = enrollAnswer.safeParse(body);
  if (!parsed.success) throw new Error(`the coordinator's enroll answer is malformed: ${parsed.error.message}`);
  if (!wellFormed(parsed.data)) throw new Error("the coordinator's enroll answer holds a malformed credential");
  return parsed.data;
}

/**
 * The credential saved in `file` for `coordinator` (an origin), or undefined when there is
 * none. A file that cannot be read as one throws, naming it: it is not silently replaced,
 * since enrolling again may use up an enrollment.
 */
export function loadCredential(file: string, coordinator: string): SavedCredential | undefined {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new Error(`cannot read the device's credential in ${file}: ${(e as Error).message}`);
  }
  const unusable = (problem: string) =>
    new Error(`${file} cannot be used for ${coordinator}: ${problem}; delete it to enroll this device again`);
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw unusable("it is not a saved credential");
  }
  const parsed = savedCredential.safeParse(json);
  if (!parsed.success) throw unusable("it is not a saved credential");
  if (!wellFormed(parsed.data)) throw unusable("its credential is malformed");
  if (parsed.data.coordinator !== coordinator) throw unusable(`it belongs to ${parsed.data.coordinator}`);
  return parsed.data;
}

/**
 * Makes the folders of `file` (the config dir, then its `credentials/`) if they are not there,
 * mode 0700; `credentials/` is the runner's alone and made 0700 whatever the umask.
 */
export function makeCredentialDirs(file: string): void {
  const dir = join(file, "..");
  mkdirSync(join(dir, ".."), { recursive: true, mode: 0o700 });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
}

/**
 * Saves `record` in `file`: `first` places it only if no credential is there (false when one
 * is: the caller uses that one); `replace` puts it over the one there. The folders are made
 * 0700 and the file 0600.
 */
export function saveCredential(file: string, record: SavedCredential, how: "first" | "replace"): boolean {
  makeCredentialDirs(file);
  const content = `${JSON.stringify(record, null, 2)}\n`;
  if (how === "first") return place(file, content, 0o600);
  replace(file, content, 0o600);
  return true;
}
