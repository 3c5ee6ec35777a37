/**
 * Every `distro` command, once: its usage line, summary, the flags it takes (beyond the common
 * --coordinator, --token and --help) and what it does. distro.ts builds the help from this table,
 * parses each command's flags with it, and dispatches to `run`; handlers are inline unless long
 * (submit.ts). A subcommand with flags of its own is an entry of two words ("runners add").
 */
import { readFileSync, writeFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { IDEMPOTENCY_KEY, type RunView } from "../core/api.js";
import { formatSize, parseSize } from "../core/units.js";
import { command, UsageError, type Command, type Flag } from "./command.js";
import { enrollmentRequest } from "./enrollment.js";
import {
  deviceLines,
  enrollmentLines,
  runLines,
  runnerLines,
  statusLines,
  tokenCreatedLines,
  tokenLines,
  trustLine,
} from "./format.js";
import { SCOPES, type TokenScope } from "../core/tokens.js";
import { followRun } from "./follow.js";
import { parseParams, submit } from "./submit.js";
import { parseInputs } from "./inputs.js";
import { safe, safeText } from "./terminal.js";

const json = { type: "boolean", help: "machine-readable output" } as const satisfies Flag;

/** `tokens` and `tokens list`: the scoped API tokens. */
const tokensList = command({
  usage: "",
  summary: "the scoped API tokens: name, scope, state (never the tokens themselves)",
  options: { json },
  async run({ client, values, io, args }) {
    args(0, "no arguments (its subcommands: tokens list, create and revoke)");
    const tokens = await client.tokens();
    if (values.json) io.out(JSON.stringify(tokens, null, 2));
    else tokenLines(tokens).forEach((line) => io.out(line));
    return 0;
  },
});

/** `cancel`, `pause` and `resume`: one run ID, the run's new status. */
const control = (verb: "cancel" | "pause" | "resume", summary: string): Command =>
  command({
    usage: "ID",
    summary,
    options: { json },
    async run({ client, values, io, args }) {
      const [id] = args(1, "exactly one run ID");
      const run = await client.control(id!, verb);
      io.out(values.json ? JSON.stringify(run) : `run ${safe(run.id)} is ${safe(run.status)}`);
      return 0;
    },
  });

/** `runners trust` and `runners untrust`: one device id, the device's trust as it is now. */
const trust = (trusted: boolean, summary: string): Command =>
  command({
    usage: "DEVICE",
    summary,
    options: { json },
    async run({ client, values, io, args }) {
      const [id] = args(1, "exactly one DEVICE id (as distro runners lists it)");
      const answer = await client.trust(id!, trusted);
      io.out(values.json ? JSON.stringify(answer, null, 2) : trustLine(answer, trusted));
      return 0;
    },
  });

export const COMMANDS: Record<string, Command> = {
  submit: command({
    usage:
      "FILE [--wait|--watch] [-o DIR] [--param NAME=VALUE]... [--input NAME=PATH]... [--chunk SIZE] [--modules DIR]... [--idempotency-key KEY]",
    summary: "upload the modules FILE names and submit the DAG",
    options: {
      watch: {
        type: "boolean",
        help: "follow the run with a live progress display; exit 0 if it succeeds, 1 if not",
      },
      wait: { type: "boolean", help: "as --watch, then print the final tasks' outputs" },
      out: {
        type: "string",
        short: "o",
        value: "DIR",
        help: "with --wait: write the final tasks' outputs into DIR (TASK.png, .json, .bin)",
      },
      param: {
        type: "string",
        multiple: true,
        value: "NAME=VALUE",
        help: "give a DAG-level param (VALUE is JSON, else a string; a string param takes it as written)",
      },
      input: {
        type: "string",
        multiple: true,
        value: "NAME=PATH",
        help: "give the input NAME the DAG declares: a file, or a folder (uploaded, only what is missing)",
      },
      chunk: {
        type: "string",
        value: "SIZE",
        help: "cut a file --input that a map over files goes over, on line boundaries, into chunks of at most SIZE (1MiB)",
      },
      modules: {
        type: "string",
        multiple: true,
        value: "DIR",
        help: [
          "where to find the .wasm files the DAG names (repeatable; default: the",
          "DAG's folder and wasm_tasks/build)",
        ],
      },
      "idempotency-key": {
        type: "string",
        value: "KEY",
        help: [
          "submit under KEY: the same KEY again within a day gives the run it made, not a",
          "new one (default: a new key each time, sent again only by this invocation)",
        ],
      },
      json,
    },
    async run({ client, values, io, args }) {
      const [file] = args(1, "exactly one FILE");
      if (values.wait && values.watch)
        throw new UsageError("--wait and --watch go alone: --wait is --watch plus the final outputs");
      const out = values.out === undefined ? undefined : resolve(io.cwd, values.out);
      const follow = values.wait ? "wait" : values.watch ? "watch" : null;
      const params = parseParams(values.param ?? []);
      const inputs = parseInputs(values.input ?? []);
      const chunk = values.chunk === undefined ? undefined : parseSize(values.chunk);
      if (values.chunk !== undefined && chunk === undefined)
        throw new UsageError(`--chunk: expected a size such as 1MiB or 500KB, got "${values.chunk}"`);
      if (chunk !== undefined && inputs.length === 0) throw new UsageError("--chunk cuts --input files: give one");
      const json = values.json ?? false;
      const key = values["idempotency-key"];
      if (key !== undefined && !IDEMPOTENCY_KEY.test(key))
        throw new UsageError(`--idempotency-key takes 1 to 255 visible ASCII characters, not "${key.slice(0, 80)}"`);
      const opts = { modules: values.modules ?? [], follow, json, out, params, inputs, chunk, key } as const;
      return submit(client, resolve(io.cwd, file!), opts, io);
    },
  }),
  runs: command({
    usage: "[--limit N]",
    summary: "list recent runs, newest first",
    options: { limit: { type: "string", value: "N", help: "how many (default 20, at most 500)" }, json },
    async run({ client, values, io, args }) {
      args(0, "no arguments");
      const limit = values.limit === undefined ? 20 : Number(values.limit);
      if (!Number.isInteger(limit) || limit < 1 || limit > 500)
        throw new UsageError(`--limit: expected a whole number from 1 to 500, got "${values.limit}"`);
      const { runs } = await client.runs(limit);
      if (values.json) io.out(JSON.stringify(runs, null, 2));
      else runLines(runs).forEach((line) => io.out(line));
      return 0;
    },
  }),
  status: command({
    usage: "ID",
    summary: "a run's status, each task's instances by state, and the first failed tasks with their errors",
    options: { json },
    async run({ client, values, io, args }) {
      const [id] = args(1, "exactly one run ID");
      const run = await client.json<RunView>(`/api/dags/${encodeURIComponent(id!)}?state=failed&limit=10`);
      if (values.json) io.out(JSON.stringify(run, null, 2));
      else statusLines(run).forEach((line) => io.out(line));
      return 0;
    },
  }),
  watch: command({
    usage: "ID",
    summary: "follow a run with a live progress display, through coordinator restarts; exit 0 if it succeeds",
    options: { json: { type: "boolean", help: "print only the final summary, as JSON" } },
    async run({ client, values, io, args }) {
      const [id] = args(1, "exactly one run ID");
      // Read once first: a bad, unknown or ambiguous id exits 2 here, and a prefix becomes the full id.
      const { id: full } = await client.summary(id!);
      return followRun(client, full, { mode: "watch", json: values.json ?? false }, io);
    },
  }),
  runners: command({
    usage: "",
    summary: "connected runners (platform, slots, busy slots, CPU, memory, cooled down) and enrolled devices",
    options: { json },
    async run({ client, values, io, args }) {
      args(0, "no arguments (its subcommands: runners add, revoke, trust and untrust)");
      const listing = await client.runners();
      if (values.json) io.out(JSON.stringify(listing, null, 2));
      else [...runnerLines(listing.runners), "", ...deviceLines(listing.devices)].forEach((line) => io.out(line));
      return 0;
    },
  }),
  "runners add": command({
    usage: "[--labels a,b] [--uses N] [--ttl 1h] [--trusted]",
    summary: "enroll devices: a token, and the one-line command that installs and starts a runner with it",
    options: {
      labels: { type: "string", value: "a,b", help: "labels every device joining with it gets" },
      uses: { type: "string", value: "N", help: "how many devices may join with it (default 1, at most 1000)" },
      ttl: {
        type: "string",
        value: "DURATION",
        help: 'how long it stays good: "90s", "30m", "1h", "2d" or seconds (default 1h, at most 30d)',
      },
      trusted: { type: "boolean", help: "mark the devices that join with it as trusted" },
      json,
    },
    async run({ client, values, io, args }) {
      args(0, "no arguments (options only)");
      const created = await client.enroll(enrollmentRequest(values));
      if (values.json) io.out(JSON.stringify(created, null, 2));
      else enrollmentLines(created).forEach((line) => io.out(line));
      return 0;
    },
  }),
  "runners revoke": command({
    usage: "DEVICE",
    summary: "revoke a device: its credential stops working and its runners are disconnected",
    options: { json },
    async run({ client, values, io, args }) {
      const [id] = args(1, "exactly one DEVICE id (as distro runners lists it)");
      const answer = await client.revoke(id!);
      io.out(
        values.json
          ? JSON.stringify(answer, null, 2)
          : `revoked device ${safe(answer.device.id)}: ${answer.closed} socket(s) closed`,
      );
      return 0;
    },
  }),
  "runners trust": trust(true, "trust a device: the outputs it produces are filed in the result cache for other runs"),
  "runners untrust": trust(
    false,
    "untrust a device: its outputs serve only their own run, and its result cache entries are purged",
  ),
  rm: command({
    usage: "ID",
    summary: "delete a finished run: its tasks, outputs, logs and listing (a running one: cancel it first)",
    options: { json },
    async run({ client, values, io, args }) {
      const [id] = args(1, "exactly one run ID");
      const answer = await client.deleteRun(id!);
      io.out(values.json ? JSON.stringify(answer) : `deleted run ${safe(answer.id)}`);
      return 0;
    },
  }),
  tokens: tokensList,
  "tokens list": tokensList,
  "tokens create": command({
    usage: "--name NAME --scope read|submit|admin [--ttl 90d]",
    summary: "mint a scoped API token, for the page, the CLI or a script that should do no more than it needs",
    options: {
      name: { type: "string", value: "NAME", help: 'what it is for, e.g. "wall display" (1 to 64 characters)' },
      scope: {
        type: "string",
        value: "SCOPE",
        help: [
          "read: the page, runs, outputs, logs, /metrics",
          "submit: also submit runs, upload modules and inputs, control its own runs",
          "admin: everything, devices, enrollments and tokens too",
        ],
      },
      ttl: {
        type: "string",
        value: "DURATION",
        help: 'how long it stays good: "30m", "12h", "90d" or seconds (at most 400d; default: no expiry)',
      },
      json,
    },
    async run({ client, values, io, args }) {
      args(0, "no arguments (options only)");
      if (!values.name) throw new UsageError("--name NAME is required");
      if (!(SCOPES as readonly string[]).includes(values.scope ?? ""))
        throw new UsageError(`--scope takes ${SCOPES.join(", ")}${values.scope ? `, not "${values.scope}"` : ""}`);
      const created = await client.createToken({
        name: values.name,
        scope: values.scope as TokenScope,
        ...(values.ttl ? { ttl: values.ttl } : {}),
      });
      if (values.json) io.out(JSON.stringify(created, null, 2));
      else tokenCreatedLines(created).forEach((line) => io.out(line));
      return 0;
    },
  }),
  "tokens revoke": command({
    usage: "ID",
    summary: "revoke a scoped API token: every request with it gets 401 from now on",
    options: { json },
    async run({ client, values, io, args }) {
      const [id] = args(1, "exactly one token ID (as distro tokens lists it)");
      const token = await client.revokeToken(id!);
      io.out(values.json ? JSON.stringify(token, null, 2) : `revoked token ${safe(token.id)} (${safe(token.name)})`);
      return 0;
    },
  }),
  output: command({
    usage: "ID TASK [-o FILE]",
    summary: "print a task's output, or write it to FILE",
    options: {
      out: { type: "string", short: "o", value: "FILE", help: "write the output to FILE instead of standard output" },
    },
    async run({ client, values, io, args }) {
      const [id, task] = args(2, "a run ID and a TASK (id or id[index])");
      const { bytes, type } = await client.outputWithType(id!, task!);
      if (values.out !== undefined) {
        writeFileSync(resolve(io.cwd, values.out), bytes);
        io.out(`wrote ${bytes.length} bytes (${safe(type)}) to ${values.out}`);
      } else if (io.tty) {
        // On a terminal the bytes are shown, never obeyed; a pipe or a file gets them unchanged.
        io.out(safeText(new TextDecoder().decode(bytes)));
      } else {
        io.write(bytes);
      }
      return 0;
    },
  }),
  logs: command({
    usage: "ID TASK [--attempt N] [--follow]",
    summary: "print the whole stderr of a task's latest attempt (or of --attempt N)",
    options: {
      attempt: { type: "string", value: "N", help: "that attempt (1, 2, …) instead of the latest" },
      follow: { type: "boolean", help: "while the attempt runs, print what it writes as it comes, until it ends" },
    },
    async run({ client, values, io, args }) {
      const [id, task] = args(2, "a run ID and a TASK (id or id[index])");
      let attempt = values.attempt === undefined ? undefined : Number(values.attempt);
      if (attempt !== undefined && !(Number.isInteger(attempt) && attempt >= 1))
        throw new UsageError(`--attempt: expected a whole number from 1, got "${values.attempt}"`);
      const decoder = new TextDecoder();
      for (let offset = 0; ;) {
        const page = await client.logs(id!, task!, { attempt, offset });
        attempt = page.attempt; // a retry meanwhile is another attempt, with a log of its own
        // On a terminal the text is shown, never obeyed; a pipe or a file gets the bytes unchanged.
        if (io.tty) io.write(new TextEncoder().encode(safeText(decoder.decode(page.bytes, { stream: true }))));
        else if (page.bytes.length > 0) io.write(page.bytes);
        offset = page.next;
        if (!values.follow || !page.running) {
          if (page.cut !== null && !page.running)
            io.err(`distro: the log of ${safe(task)} attempt ${attempt} was cut: ${page.cut} byte(s) not kept`);
          return 0;
        }
        await new Promise((r) => setTimeout(r, 300));
      }
    },
  }),
  cancel: control("cancel", "cancel a run: running attempts are stopped, the rest never runs"),
  pause: control("pause", "let running attempts finish, start nothing new"),
  resume: control("resume", "resume a paused run"),
  retry: command({
    usage: "ID [TASK...] | ID --from TASK",
    summary: "run a failed or cancelled run's unfinished tasks again, in the same run (what succeeded stays)",
    options: {
      from: {
        type: "string",
        value: "TASK",
        help: "instead: a new run, linked, that re-runs TASK and what depends on it and reuses the rest",
      },
      json,
    },
    async run({ client, values, io, rest }) {
      const [id, ...tasks] = rest;
      if (id === undefined) throw new UsageError("usage: distro retry ID [TASK...] | ID --from TASK");
      if (values.from !== undefined && tasks.length > 0)
        throw new UsageError("--from TASK goes without TASK arguments");
      const answer =
        values.from === undefined
          ? await client.retry(id, { tasks: tasks.length > 0 ? tasks : undefined })
          : await client.retry(id, { from: values.from });
      const what = answer.retry_of
        ? `run ${safe(answer.id)} retries ${safe(answer.retry_of)} from ${safe(values.from ?? "")}: ${answer.retried} task(s) run`
        : `run ${safe(answer.id)} is ${safe(answer.status)}: ${answer.retried} task(s) run again`;
      io.out(values.json ? JSON.stringify(answer) : what);
      return 0;
    },
  }),
  modules: command({
    usage: "push FILE...",
    summary: "upload .wasm modules under their file names (noop.wasm, as DAGs name them)",
    options: { json },
    async run({ client, values, io, rest }) {
      if (rest[0] !== "push" || rest.length < 2) throw new UsageError("usage: distro modules push FILE...");
      const pushed = [];
      for (const file of rest.slice(1)) {
        const path = resolve(io.cwd, file);
        let bytes: Uint8Array<ArrayBuffer>;
        try {
          bytes = new Uint8Array(readFileSync(path));
        } catch (e) {
          throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
        }
        // Under its file name as DAGs name modules (`module: noop.wasm`), as `distro submit` uploads them.
        const info = await client.uploadModule(basename(path), bytes);
        pushed.push(info);
        if (!values.json) io.out(`${safe(info.name)}: ${formatSize(info.size)}, sha256:${safe(info.sha256)}`);
      }
      if (values.json) io.out(JSON.stringify(pushed, null, 2));
      return 0;
    },
  }),
};
