// The `distro` CLI's command table (cli/commands.ts) through main() with a captured Io: the help
// built from it, each command taking only the flags it declares (an unknown flag or another
// command's exits 2 naming it), and the usage errors a command raises before any request. No
// coordinator runs: the URL points at a closed port, which only the last test reaches.
import { describe, expect, it } from "vitest";
import { COMMANDS } from "../../cli/commands";
import { main } from "../../cli/distro";

async function distro(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main(argv, {
    out: (line) => out.push(line),
    write: (bytes) => out.push(new TextDecoder().decode(bytes)),
    err: (line) => err.push(line),
    env: { DISTRO_TOKEN: "t", DISTRO_COORDINATOR: "http://127.0.0.1:1" },
    cwd: process.cwd(),
  });
  return { code, out: out.join("\n"), err: err.join("\n") };
}

describe("distro command table", () => {
  it("lists every command of the table in the help, and each command's flags in its own", async () => {
    const top = await distro("--help");
    expect(top.code).toBe(0);
    const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
    for (const [name, c] of Object.entries(COMMANDS))
      expect(top.out).toContain(`  ${name.padEnd(width)}  ${c.summary}`);
    for (const [name, c] of Object.entries(COMMANDS)) {
      const help = await distro(...name.split(" "), "--help");
      expect(help.code, name).toBe(0);
      expect(help.out).toContain(`Usage: distro ${name}`);
      for (const flag of [...Object.keys(c.options), "coordinator", "token", "help"])
        expect(help.out, `${name} --${flag}`).toMatch(new RegExp(`^ {2}(-\\w, )?--${flag}\\b`, "m"));
    }
    expect((await distro("runners", "--help")).out).toMatch(
      /^Subcommands:\n {2}runners add {6}.*\n {2}runners revoke {3}.*\n {2}runners trust {4}.*\n {2}runners untrust {2}/m,
    );
    expect((await distro("submit", "-h")).out).toContain(
      "  -o, --out DIR          with --wait: write the final tasks' outputs into DIR (TASK.png, .json, .bin)",
    );
    expect((await distro("submit", "-h")).out).toContain(
      "  --modules DIR          where to find the .wasm files the DAG names (repeatable; default: the\n" +
        "                         DAG's folder and wasm_tasks/build)",
    );
  });

  it("a flag two commands take has one type, so the first pass finds the command whatever flags it has", () => {
    const seen = new Map<string, string>();
    for (const c of Object.values(COMMANDS))
      for (const [name, f] of Object.entries(c.options)) {
        const shape = `${f.type} ${f.short ?? ""} ${f.multiple ?? false}`;
        expect(seen.get(name) ?? shape, name).toBe(shape);
        seen.set(name, shape);
      }
  });

  it("exits 2 naming a flag the command does not take, or one no command takes", async () => {
    for (const [argv, message] of [
      [["runs", "--wait"], "runs does not take --wait"],
      [["runs", "--wait=1"], "runs does not take --wait"],
      [["status", "-o", "x", "ID"], "status does not take -o"],
      [["output", "ID", "T", "--json"], "output does not take --json"],
      [["runners", "--limit", "3"], "runners does not take --limit"],
      [["runners", "--uses", "3"], "runners does not take --uses"],
      [["runners", "revoke", "d", "--ttl", "1h"], "runners revoke does not take --ttl"],
      [["runners", "trust", "d", "--trusted"], "runners trust does not take --trusted"],
      [["runs", "--frobnicate"], "unknown flag --frobnicate"],
      [["-x", "runs"], "unknown flag -x"],
    ] as const) {
      const { code, err, out } = await distro(...argv);
      expect(code, argv.join(" ")).toBe(2);
      expect(err).toBe(`distro: ${message}\nRun distro --help for usage.`);
      expect(out).toBe("");
    }
  });

  it("exits 2 on other usage errors, before any request", async () => {
    for (const [argv, message] of [
      [["frobnicate"], `unknown command "frobnicate"`],
      [["runs", "--limit"], "Option '--limit <value>' argument missing"],
      [["runners", "--json=yes"], "Option '--json' does not take an argument"],
      [["runs", "--limit", "0"], `--limit: expected a whole number from 1 to 500, got "0"`],
      [["runs", "extra"], "runs takes no arguments"],
      [["pause"], "pause takes exactly one run ID"],
      [["output", "ID"], "output takes a run ID and a TASK (id or id[index])"],
      [
        ["submit", "a.yaml", "--wait", "--watch"],
        "--wait and --watch go alone: --wait is --watch plus the final outputs",
      ],
      [["submit", "a.yaml", "--param", "=1"], `--param: expected NAME=VALUE, got "=1"`],
      [["modules", "pull", "x"], "usage: distro modules push FILE..."],
      [["runners", "extra"], "runners takes no arguments (its subcommands: runners add, revoke, trust and untrust)"],
      [["runners", "add", "extra"], "runners add takes no arguments (options only)"],
      [["runners", "revoke"], "runners revoke takes exactly one DEVICE id (as distro runners lists it)"],
      [["runners", "revoke", "a", "b"], "runners revoke takes exactly one DEVICE id (as distro runners lists it)"],
      [["runners", "trust"], "runners trust takes exactly one DEVICE id (as distro runners lists it)"],
      [["runners", "untrust", "a", "b"], "runners untrust takes exactly one DEVICE id (as distro runners lists it)"],
      [["runners", "add", "--uses", "0"], `--uses: expected a whole number from 1 to 1000, got "0"`],
      [
        ["runners", "add", "--ttl", "soon"],
        `--ttl: expected a duration from 1s to 30d such as "1h" or "2d" (or seconds), got "soon"`,
      ],
      [
        ["runners", "add", "--labels", "gpu,a b"],
        `--labels: "a b" is not a label (1 to 64 of letters, digits, _ . : -)`,
      ],
      [["runs", "--coordinator", "not a url"], `--coordinator: "not a url" is not a URL`],
    ] as const) {
      const { code, err } = await distro(...argv);
      expect(code, argv.join(" ")).toBe(2);
      expect(err).toBe(`distro: ${message}\nRun distro --help for usage.`);
    }
    const noToken = await main(["runs"], { out: () => {}, write: () => {}, err: () => {}, env: {}, cwd: "/" });
    expect(noToken).toBe(2);
  });

  it("without a command prints the help and exits 2; a flag of some command does not matter then", async () => {
    for (const argv of [[], ["--wait"]]) {
      const { code, out } = await distro(...argv);
      expect(code).toBe(2);
      expect(out).toMatch(/^Usage: distro <command> \[options\]/);
    }
  });

  it("dispatches a well-formed command to its handler: here it cannot reach the coordinator, exit 1", async () => {
    const { code, err } = await distro("runs", "--json", "--limit", "5");
    expect(code).toBe(1);
    expect(err).toMatch(/^distro: cannot reach the coordinator at http:\/\/127\.0\.0\.1:1/);
    for (const argv of [
      ["runners", "add", "--uses", "3", "--trusted"],
      ["runners", "revoke", "d"],
      ["runners", "trust", "d"],
      ["runners", "untrust", "d", "--json"],
      ["runners"],
    ]) {
      const sub = await distro(...argv);
      expect(sub.code, argv.join(" ")).toBe(1);
      expect(sub.err).toMatch(/^distro: cannot reach the coordinator/);
    }
  });
});
