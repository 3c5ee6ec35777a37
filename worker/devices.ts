/**
 * Devices and enrollments, kept in D1 (every Worker isolate authenticates against them). An
 * operator mints an enrollment (a token good for `uses` devices until it expires); a runner
 * trades it once for its own credential, `<device>.<secret>`, where the coordinator picked the
 * device id and the 256-bit secret. Only SHA-256 hashes of tokens and credentials are stored
 * (secrets.ts).
 *
 * The development secret (RUNNER_TOKEN) is an enrollment that never runs out, of trusted devices:
 * each runner still gets a credential of its own, so knowing the secret never lets anyone act as
 * another device. A trusted device's outputs may fill the result cache (db.ts fileOutputs).
 */
import type { DeviceView, EnrollAnswer, EnrollmentView } from "../core/api.js";
import { hex, random, sha256 } from "./secrets.js";

/** A device id: what runner ids start with (`<device>` and `<device>.<k>`). */
export const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Why a token or credential was refused: unknown (401) or known but no longer good (403). */
export type Refused = { refused: 401 | 403; message: string };

const encoder = new TextEncoder();

const iso = (ms: number) => new Date(ms).toISOString();

interface EnrollmentRow {
  id: string;
  labels: string;
  trusted: number;
  uses: number;
  used: number;
  created_at: number;
  expires_at: number;
  revoked_at: number | null;
}

/** Mints an enrollment; its token is in the answer and nowhere else. */
export async function createEnrollment(
  d1: D1Database,
  spec: { labels: string[]; uses: number; ttlMs: number; trusted: boolean },
  now = Date.now(),
): Promise<{ view: EnrollmentView; token: string }> {
  const id = hex(8);
  const token = `dse_${random(32)}`;
  await d1
    .prepare(
      `INSERT INTO enrollments (id, token_hash, labels, trusted, uses, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
    )
    .bind(id, await sha256(token), JSON.stringify(spec.labels), spec.trusted ? 1 : 0, spec.uses, now, now + spec.ttlMs)
    .run();
  const view = (await enrollments(d1, id))[0]!;
  return { view, token };
}

/** Every enrollment (or the one with `id`), newest first, with the devices that joined with it. */
export async function enrollments(d1: D1Database, id?: string): Promise<EnrollmentView[]> {
  const [rows, joined] = await d1.batch<EnrollmentRow & { id: string; enrollment: string }>([
    d1
      .prepare(
        `SELECT id, labels, trusted, uses, used, created_at, expires_at, revoked_at FROM enrollments
         WHERE ?1 IS NULL OR id = ?1 ORDER BY created_at DESC, id LIMIT 500`,
      )
      .bind(id ?? null),
    d1
      .prepare(
        `SELECT id, enrollment FROM devices WHERE enrollment IS NOT NULL AND (?1 IS NULL OR enrollment = ?1)
         ORDER BY enrolled_at`,
      )
      .bind(id ?? null),
  ]);
  const devices = new Map<string, string[]>();
  for (const d of joined!.results) devices.set(d.enrollment, [...(devices.get(d.enrollment) ?? []), d.id]);
  return rows!.results.map((r) => ({
    id: r.id,
    labels: JSON.parse(r.labels) as string[],
    trusted: r.trusted === 1,
    uses: r.uses,
    used: r.used,
    created_at: r.created_at,
    expires_at: r.expires_at,
    revoked_at: r.revoked_at,
    devices: devices.get(r.id) ?? [],
  }));
}

/** Revokes an enrollment (devices that joined with it keep their credentials); null when unknown. */
export async function revokeEnrollment(d1: D1Database, id: string, now = Date.now()): Promise<EnrollmentView | null> {
  await d1.prepare(`UPDATE enrollments SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`).bind(now, id).run();
  return (await enrollments(d1, id))[0] ?? null;
}

/**
 * Trades an enrollment token for a new device and its credential, spending one use; the use is
 * taken in the same statement that checks it, so two devices racing for the last use cannot
 * both win. A refusal says why.
 */
export async function enrollWithToken(
  d1: D1Database,
  token: string,
  name: string,
  now = Date.now(),
): Promise<EnrollAnswer | Refused> {
  const hash = await sha256(token);
  const taken = await d1
    .prepare(
      `UPDATE enrollments SET used = used + 1
       WHERE token_hash = ? AND used < uses AND revoked_at IS NULL AND expires_at > ?
       RETURNING id, labels, trusted`,
    )
    .bind(hash, now)
    .first<{ id: string; labels: string; trusted: number }>();
  if (!taken) {
    const row = await d1
      .prepare(`SELECT id, uses, used, expires_at, revoked_at FROM enrollments WHERE token_hash = ?`)
      .bind(hash)
      .first<EnrollmentRow>();
    if (!row) return { refused: 401, message: "unknown enrollment token" };
    const why =
      row.revoked_at !== null
        ? `enrollment ${row.id} was revoked at ${iso(row.revoked_at)}`
        : row.expires_at <= now
          ? `enrollment ${row.id} expired at ${iso(row.expires_at)}`
          : `enrollment ${row.id} has been used ${row.used} of ${row.uses} times`;
    return { refused: 403, message: `${why}; ask the operator for a new one (distro runners add)` };
  }
  const labels = JSON.parse(taken.labels) as string[];
  return (await addDevice(d1, { name, labels, trusted: taken.trusted === 1, enrollment: taken.id }, now))!;
}

/**
 * A device joining with the development secret: a new id, or `proposed` when nobody holds it yet
 * (trust on first use; a held id is refused, so the secret cannot take another device's id).
 */
export async function enrollWithDevSecret(
  d1: D1Database,
  name: string,
  proposed: string | undefined,
  now = Date.now(),
): Promise<EnrollAnswer | Refused> {
  // Development mode trusts its devices: their outputs fill the result cache, as `npm start` shows.
  const answer = await addDevice(d1, { name, labels: [], trusted: true, enrollment: null, id: proposed }, now);
  return answer ?? { refused: 403, message: `device id ${proposed} is held by another device's credential` };
}

/**
 * Inserts a device with a new credential: under `device.id`, or a fresh id made from its name.
 * Null when `device.id` is held already (the insert, not a look beforehand, decides, so two
 * claims of one id cannot both win).
 */
async function addDevice(
  d1: D1Database,
  device: { name: string; labels: string[]; trusted: boolean; enrollment: string | null; id?: string },
  now: number,
): Promise<EnrollAnswer | null> {
  const slug = device.name.replace(/[^A-Za-z0-9_-]/g, "-").slice(0, 48) || "device";
  // A made-up id that happens to be held (32 random bits) is made again.
  for (let tries = 0; tries < 4; tries++) {
    const id = device.id ?? `${slug}-${hex(4)}`;
    const credential = `${id}.${random(32)}`;
    const { meta } = await d1
      .prepare(
        `INSERT OR IGNORE INTO devices (id, name, secret_hash, labels, trusted, enrollment, enrolled_at)
         VALUES (?, ?, ?, ?, ?, ?, ?)`,
      )
      .bind(
        id,
        device.name,
        await sha256(credential),
        JSON.stringify(device.labels),
        device.trusted ? 1 : 0,
        device.enrollment,
        now,
      )
      .run();
    if (meta.changes > 0)
      return { device: id, credential, labels: device.labels, trusted: device.trusted, enrollment: device.enrollment };
    if (device.id !== undefined) return null;
  }
  throw new Error("could not make a device id that nobody holds");
}

/** The device a credential proves, or why it is refused. */
export async function deviceOf(d1: D1Database, credential: string): Promise<{ device: string } | Refused> {
  const id = credential.slice(0, credential.indexOf("."));
  if (!DEVICE_ID.test(id)) return { refused: 401, message: "invalid credential" };
  const row = await d1
    .prepare(`SELECT secret_hash, revoked_at FROM devices WHERE id = ?`)
    .bind(id)
    .first<{ secret_hash: string; revoked_at: number | null }>();
  const given = encoder.encode(await sha256(credential));
  if (!row || !crypto.subtle.timingSafeEqual(given, encoder.encode(row.secret_hash)))
    return { refused: 401, message: "invalid credential" };
  if (row.revoked_at !== null)
    return {
      refused: 403,
      message: `device ${id} was revoked at ${iso(row.revoked_at)}; enroll it again (distro runners add) to lend it`,
    };
  return { device: id };
}

/** Notes that a device opened a socket now. */
export async function touchDevice(d1: D1Database, id: string, now = Date.now()): Promise<void> {
  await d1.prepare(`UPDATE devices SET last_seen = ? WHERE id = ?`).bind(now, id).run();
}

/**
 * Every device (or the one with `id`), newest first, with `connected` from the devices with a pool
 * socket and `cooled_until` from the pool's cool-downs.
 */
export async function devices(
  d1: D1Database,
  connected: Set<string>,
  cooled: Map<string, number>,
  id?: string,
): Promise<DeviceView[]> {
  const { results } = await d1
    .prepare(
      `SELECT id, name, labels, trusted, enrollment, enrolled_at, last_seen, revoked_at FROM devices
       WHERE ?1 IS NULL OR id = ?1 ORDER BY enrolled_at DESC, id LIMIT 1000`,
    )
    .bind(id ?? null)
    .all<Omit<DeviceView, "labels" | "trusted" | "connected" | "cooled_until"> & { labels: string; trusted: number }>();
  return results.map((r) => ({
    ...r,
    labels: JSON.parse(r.labels) as string[],
    trusted: r.trusted === 1,
    connected: connected.has(r.id),
    cooled_until: cooled.get(r.id) ?? null,
  }));
}

/** Trusts or untrusts a device; false when there is no such device. */
export async function setTrust(d1: D1Database, id: string, trusted: boolean): Promise<boolean> {
  const { meta } = await d1
    .prepare(`UPDATE devices SET trusted = ? WHERE id = ?`)
    .bind(trusted ? 1 : 0, id)
    .run();
  return meta.changes > 0;
}

/** Marks a device revoked (its credential is refused from now on); false when there is no such device. */
export async function revokeDevice(d1: D1Database, id: string, now = Date.now()): Promise<boolean> {
  const { meta } = await d1
    .prepare(`UPDATE devices SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?`)
    .bind(now, id)
    .run();
  return meta.changes > 0;
}
