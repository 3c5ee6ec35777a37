/**
 * The docs check's placeholders (used by docs-blocks.ts): the coordinator addresses the docs name
 * are pointed at the test's coordinator, and `<id>`, `<token>`, `<enrollment>`, `<device>` and `<build>` are
 * filled from what earlier commands of the block made: a run it submitted, an enrollment that
 * `distro runners add` or `POST /api/enrollments` printed with its token, a device a runner or the
 * enroll exchange reported. A `<token>` or `<device>` the block made none of is made here, as
 * `distro runners add` and a joining runner would make one.
 */

/** What earlier commands of a block made, for the placeholders of later ones. */
export interface Made {
  /** A run a command submitted (`<id>`). */
  run?: string;
  /** An enrollment a command created (`<enrollment>`), and its token while no command used it (`<token>`). */
  enrollment?: string;
  token?: string;
  /** A device that enrolled (`<device>`). */
  device?: string;
}

/** The coordinator placeholders are filled against, and its API token (to mint enrollments). */
interface Coordinator {
  coordinator: URL;
  apiToken: string;
}

/** Coordinator addresses in the docs: the local default, a LAN example, a deployed example. */
const COORDINATOR_URL =
  /https?:\/\/(?:127\.0\.0\.1|localhost|192\.168\.\d+\.\d+):8787|https:\/\/[\w.-]+\.workers\.dev/g;
const BARE_LOCAL = /\b(?:127\.0\.0\.1|localhost):8787\b/g;
const RUN_ID_PLACEHOLDER = /<(?:id|run id|run-id|run_id|ID)>/g;
/** What `distro runners add` prints: an enrollment token, its enrollment, and a device that joined. */
const TOKEN_PLACEHOLDER = /<(?:token|enrollment token)>/g;
const ENROLLMENT_PLACEHOLDER = /<(?:enrollment|enrollment id)>/g;
const DEVICE_PLACEHOLDER = /<(?:device|device id)>/g;
/** The served runner's build in a join command (`/runner-<build>.tgz`). */
const BUILD_PLACEHOLDER = /<build>/g;
const ANY_PLACEHOLDER = /<[a-zA-Z][\w -]*>/;
const SUBMITTED = /submitted run ([0-9a-f]{16,})|"id"\s*:\s*"([0-9a-f]{16,})"/;
/** `distro runners add` (its text or --json) and `POST /api/enrollments`: the enrollment and its token. */
const ENROLLS = /\bdistro runners add\b|POST\b.*\/api\/enrollments\b/;
const ENROLLMENT_MADE = /^enrollment ([0-9a-f]{8,}):|"id"\s*:\s*"([0-9a-f]{8,})"/m;
const TOKEN_MADE = /DISTRO_ENROLL="?([A-Za-z0-9_-]{20,})|"token"\s*:\s*"([A-Za-z0-9_-]{20,})"/;
/** A runner's log line, or the answer of `POST /api/runners/enroll`. */
const DEVICE_MADE = /\benrolled as device ([A-Za-z0-9_-]+)|"device"\s*:\s*"([A-Za-z0-9_-]+)"/;

/** Notes what a command that succeeded made: a run, an enrollment and its token, a device. */
export function remember(text: string, output: string, made: Made): void {
  const submitted = /POST\b.*\/api\/dags\b|distro submit\b/.test(text) ? SUBMITTED.exec(output) : null;
  if (submitted) made.run = submitted[1] ?? submitted[2];
  const enrollment = ENROLLS.test(text) ? ENROLLMENT_MADE.exec(output) : null;
  const token = enrollment ? TOKEN_MADE.exec(output) : null;
  if (enrollment && token) {
    made.enrollment = enrollment[1] ?? enrollment[2];
    made.token = token[1] ?? token[2];
  }
  const device = DEVICE_MADE.exec(output);
  if (device) made.device = device[1] ?? device[2];
}

/** A new enrollment of the coordinator, as `distro runners add` makes one. */
async function mint(ctx: Coordinator): Promise<{ id: string; token: string }> {
  const res = await fetch(new URL("/api/enrollments", ctx.coordinator), {
    method: "POST",
    headers: { Authorization: `Bearer ${ctx.apiToken}`, "Content-Type": "application/json" },
    body: "{}",
  });
  if (res.status !== 201) throw new Error(`minting an enrollment: HTTP ${res.status} ${await res.text()}`);
  return (await res.json()) as { id: string; token: string };
}

/** A new device, enrolled with a new enrollment as a joining runner would. */
async function enrollDevice(ctx: Coordinator): Promise<string> {
  const { token } = await mint(ctx);
  const res = await fetch(new URL("/api/runners/enroll", ctx.coordinator), {
    method: "POST",
    headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name: "docs-device" }),
  });
  if (!res.ok) throw new Error(`enrolling a device: HTTP ${res.status} ${await res.text()}`);
  return ((await res.json()) as { device: string }).device;
}

/**
 * The command with its placeholders filled from what the block made, or why it cannot be. A
 * `<token>` takes the token of the block's last enrollment if no command used it yet, else a
 * newly minted one (one use each, as the command `distro runners add` prints is meant for one
 * device); a `<device>` the block's last enrolled device, else a newly enrolled one.
 */
export async function fill(
  text: string,
  ctx: Coordinator,
  made: Made,
): Promise<{ ran: string; enrollment?: string } | { unfilled: string }> {
  let ran = text.replace(COORDINATOR_URL, ctx.coordinator.origin).replace(BARE_LOCAL, ctx.coordinator.host);
  const fills: [RegExp, string | undefined, string][] = [
    [RUN_ID_PLACEHOLDER, made.run, "a run id placeholder, but no earlier command of the block submitted a run"],
    [ENROLLMENT_PLACEHOLDER, made.enrollment, "an enrollment placeholder, but no earlier command made one"],
  ];
  for (const [pattern, value, missing] of fills) {
    if (ran.search(pattern) < 0) continue;
    if (value === undefined) return { unfilled: missing };
    ran = ran.replace(pattern, value);
  }
  if (ran.search(BUILD_PLACEHOLDER) >= 0) {
    const sums = await fetch(new URL("/runner.tgz.sha256", ctx.coordinator));
    if (!sums.ok)
      return { unfilled: `a runner build placeholder, but the coordinator serves no runner (${sums.status})` };
    ran = ran.replace(BUILD_PLACEHOLDER, (await sums.text()).slice(0, 12));
  }
  if (ran.search(DEVICE_PLACEHOLDER) >= 0)
    ran = ran.replace(DEVICE_PLACEHOLDER, (made.device ??= await enrollDevice(ctx)));
  let enrollment: string | undefined;
  if (ran.search(TOKEN_PLACEHOLDER) >= 0) {
    const own = made.token !== undefined ? { id: made.enrollment!, token: made.token } : await mint(ctx);
    made.token = undefined;
    enrollment = own.id;
    ran = ran.replace(TOKEN_PLACEHOLDER, own.token);
  }
  const unfilled = ANY_PLACEHOLDER.exec(ran);
  if (unfilled) return { unfilled: `placeholder ${unfilled[0]} that the check cannot fill` };
  return { ran, enrollment };
}
