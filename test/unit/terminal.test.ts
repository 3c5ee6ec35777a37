// What the CLI prints from the coordinator cannot drive the terminal: a run name and a stderr
// holding ESC[2J (clear screen) and an OSC sequence (set the window title) print escaped in
// `distro runs`, `distro status`, `distro runners` (runners and devices), `distro runners add`
// and the live progress line.
import { describe, expect, it } from "vitest";
import { deviceLines, enrollmentLines, runLines, runnerLines, statusLines } from "../../cli/format";
import { Progress } from "../../cli/progress";
import { safe, safeText } from "../../cli/terminal";
import type { DeviceView, EnrollmentCreated, RunView, RunListing, RunnerView } from "../../core/api";

const CLEAR = "\x1b[2J";
const OSC = "\x1b]0;owned\x07";
const HOSTILE = `evil${CLEAR}${OSC}\x9b31m\u202e`;
/** No raw C0 (but newline) or C1 control character, and no bidi or invisible character, reaches the terminal. */
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]/;

const created = Date.UTC(2026, 11, 1);
const run = {
  id: "ab".repeat(32),
  name: HOSTILE,
  status: `running${CLEAR}`,
  tasks_total: 2,
  counts: { failed: 1, leased: 1, [`x${OSC}`]: 0 },
  created_at: created,
  updated_at: created,
  finished_at: null,
  nodes: [{ id: `n${CLEAR}`, module: "m.wasm", deps: [], instances: null, counts: { failed: 1, [`st${OSC}`]: 1 } }],
  tasks: [
    {
      id: `t${OSC}`,
      node: "n",
      index: null,
      state: "failed",
      attempts: [
        {
          attempt: 1,
          runner: "r",
          runner_name: HOSTILE,
          started_at: created,
          ended_at: created,
          outcome: "failed",
          failure_kind: `exit${CLEAR}`,
          error: `bad${OSC}\nforged line`,
          stderr: `line one${CLEAR}\nline two${OSC}\r\n`,
        },
      ],
    },
  ],
} as unknown as RunView; // hostile values the types would not allow
const listing = { ...run, tasks: 2 } as unknown as RunListing;
const runner = {
  id: "r",
  name: HOSTILE,
  platform: `linux${CLEAR}`,
  arch: `x64${OSC}`,
  cores: 2,
  memory: 2 ** 30,
  freeMemory: 2 ** 29,
  load: 5,
  slots: 2,
  busy: 1,
  labels: [`gpu${OSC}`],
  version: "1",
  runs: [],
} as unknown as RunnerView;

const device = {
  id: `d${CLEAR}`,
  name: HOSTILE,
  labels: [`gpu${OSC}`],
  trusted: false,
  enrollment: null,
  enrolled_at: created,
  last_seen: created,
  connected: false,
  revoked_at: null,
} as DeviceView;
const enrollment = {
  id: `e${OSC}`,
  token: `t${CLEAR}`,
  expires_at: created + 60_000,
  uses: 1,
  used: 0,
  labels: [HOSTILE],
  trusted: false,
  created_at: created,
  revoked_at: null,
  devices: [],
  command: `x${CLEAR}`,
  commands: { unix: `u${CLEAR}\nrm -rf ~`, powershell: `p${OSC}`, termux: `t\u202e` },
} as EnrollmentCreated;

describe("terminal-safe output", () => {
  it("escapes C0 and C1 controls and bidi overrides; fields lose newlines, text keeps them", () => {
    expect(safe(`a${CLEAR}b`)).toBe("a\\u001b[2Jb");
    expect(safe(`t${OSC}`)).toBe("t\\u001b]0;owned\\u0007");
    expect(safe("a\nb\tc\rd\x9be\u202ef")).toBe("a\\u000ab c\\u000dd\\u009be\\u202ef");
    expect(safeText("one\ntwo\r\x1b[1A")).toBe("one\ntwo\\u000d\\u001b[1A");
    expect(safeText(safeText(HOSTILE))).toBe(safeText(HOSTILE));
    expect(safe("a\u200bb\u200fc\u2028d\ufeffe\u061cf")).toBe("a\\u200bb\\u200fc\\u2028d\\ufeffe\\u061cf");
  });

  it("keeps --json output valid JSON: the escapes are JSON's own", () => {
    const value = { name: HOSTILE, stderr: `x\x7f\x85\x9b31m\u2028y` };
    const printed = safeText(JSON.stringify(value));
    expect(printed).not.toMatch(RAW);
    expect(JSON.parse(printed)).toEqual(value);
  });

  it("distro runs, status, runners and runners add print hostile names, labels, errors and stderr escaped", () => {
    const printed = {
      runs: runLines([listing], created),
      status: statusLines(run),
      runners: runnerLines([runner]),
      devices: deviceLines([device], created),
      enrollment: enrollmentLines(enrollment, created),
    };
    for (const [command, lines] of Object.entries(printed)) {
      for (const line of lines) expect(line, `${command}: ${JSON.stringify(line)}`).not.toMatch(RAW);
    }
    expect(printed.runs.join("\n")).toContain("evil\\u001b[2J\\u001b]0;owned\\u0007\\u009b31m\\u202e");
    expect(printed.runners.join("\n")).toContain("evil\\u001b[2J");
    expect(printed.devices.join("\n")).toContain("evil\\u001b[2J");
    expect(printed.devices.join("\n")).toContain("gpu\\u001b]0;owned\\u0007");
    expect(printed.enrollment).toContain("  u\\u001b[2J\\u000arm -rf ~"); // a command cannot forge a second line
    const status = printed.status.join("\n");
    expect(status).toContain("bad\\u001b]0;owned\\u0007\\u000aforged line"); // the error cannot forge a line of its own
    expect(status).toContain("stderr: line one\\u001b[2J\n          line two\\u001b]0;owned\\u0007");
  });

  it("the live progress line escapes the status it is given, and keeps only its own redraw codes", () => {
    for (const tty of [true, false]) {
      let screen = "";
      const progress = new Progress({ tty, columns: 200, write: (t) => (screen += t) }, () => 0);
      progress.update(run);
      progress.end();
      const own = screen.replaceAll("\r\x1b[2K", "");
      expect(own, JSON.stringify(own)).not.toMatch(RAW);
      expect(own).toContain("running\\u001b[2J");
    }
  });
});
