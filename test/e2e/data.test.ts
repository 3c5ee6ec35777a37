// Bring your own data, end to end with real runners: a text file cut into chunks at submit and
// counted by a map over its files (the CLI, as the README shows it), maps over a task's output
// whose width is known only when that task succeeds (5,000 elements in order, an array over one
// SQLite value, one past `max_instances`), and a map over a folder of 200 files.
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunView } from "../../core/api";
import { DEV_TOKENS } from "../../dev/local";
import { countWords, topWords, wordText } from "../helpers/wordcount";
import { Cluster } from "./harness";

const cluster = new Cluster();
const submit = (yaml: string) => cluster.client.submit(`cache: false\n${yaml}`);
const json = async (id: string, task: string) =>
  JSON.parse(new TextDecoder().decode(await cluster.client.output(id, task))) as Record<string, unknown>;
const node = (run: RunView, id: string) => run.nodes.find((n) => n.id === id)!;
/** The run's end, with what failed (if anything) as the message of a failed expectation. */
const finish = async (id: string) => {
  const done = await cluster.client.wait(id);
  const failed =
    done.status === "succeeded"
      ? []
      : (await cluster.client.json<RunView>(`/api/dags/${id}?state=failed&limit=3`)).tasks;
  return { done, why: JSON.stringify(failed.map((t) => [t.id, t.attempts.at(-1)?.error])) };
};

beforeAll(async () => {
  await cluster.start();
  cluster.runner({ name: "data-a", slots: 2 });
  cluster.runner({ name: "data-b", slots: 2 });
  await cluster.connected("data-a", "data-b");
  await cluster.upload("sequence.wasm", "echo.wasm", "noop.wasm", "blob.wasm", "tally.wasm", "digest.wasm");
});
afterAll(() => cluster.stop());

describe("inputs and maps over data", () => {
  it("wordcount: a 20 MB text cut into 1 MiB chunks prints the reference's top words", async () => {
    const text = wordText(20_000_000, 7);
    const file = join(cluster.dir, "book.txt");
    writeFileSync(file, text);
    const args = ["submit", "dags/wordcount.yaml", "--input", `text=${file}`, "--chunk", "1MiB", "--wait"];
    const { code, out, err } = await cluster.distro(...args);
    expect(err).toBe("");
    expect(code).toBe(0);
    expect(out).toMatch(/inputs: 20 blobs uploaded \(19\.\d MiB\)/);
    const id = /submitted run ([0-9a-f]{64})/.exec(out)![1]!;
    const expected = topWords(countWords(text), 10);
    const printed = JSON.parse(/^top: (.*)$/m.exec(out)![1]!) as unknown;
    expect(printed).toEqual(expected);
    // The map's width came from the data: one instance per chunk, as many as the chunks.
    const run = await cluster.client.run(id);
    expect(node(run, "count").instances).toBe(20);
    // Submitted again, nothing is uploaded twice: the coordinator has every chunk.
    const again = await cluster.distro(...args.slice(0, -1));
    expect(again.code).toBe(0);
    expect(again.out).toContain("inputs: 0 blobs uploaded (0 B), 20 already there");
  });

  it("map over a task's output: 5,000 instances created when it succeeds, seen in index order", async () => {
    const { id } = await submit(`name: over
tasks:
  - { id: split, module: sequence.wasm, params: { count: 5000 } }
  - { id: each, module: echo.wasm, map: { over: split }, args: ["{{item}}"] }
  - { id: reduce, module: echo.wasm, depends_on: [each] }
`);
    const { done, why } = await finish(id);
    expect(done.status, why).toBe("succeeded");
    const run = await cluster.client.run(id);
    expect(node(run, "each").instances).toBe(5000);
    expect(done.tasks_total).toBe(5002);
    const seen = ((await json(id, "reduce")).inputs as { each: { item: number; index: number; task: string }[] }).each;
    expect(seen.map((e) => e.item)).toEqual(Array.from({ length: 5000 }, (_, i) => i));
    expect(seen.map((e) => e.task).slice(0, 2)).toEqual(["each[0]", "each[1]"]);
  });

  it("an array whose JSON is over 2 MB maps too, each instance given its own element", async () => {
    const { id } = await submit(`name: big-over
tasks:
  - { id: split, module: sequence.wasm, params: { count: 3000, pad: 1000 } }
  - { id: each, module: echo.wasm, map: { over: split } }
  - { id: reduce, module: echo.wasm, depends_on: [each] }
`);
    const { done, why } = await finish(id);
    expect(done.status, why).toBe("succeeded");
    const run = await cluster.client.run(id);
    const split = run.tasks.find((t) => t.id === "split")!;
    expect(split.output_bytes).toBeGreaterThan(3_000_000);
    const seen = ((await json(id, "reduce")).inputs as { each: { item: string }[] }).each;
    expect(seen).toHaveLength(3000);
    expect(seen[2999]!.item).toBe(`item-2999-${"x".repeat(1000)}`);
  });

  it("a reducer whose envelope is over 8 MiB gets it by reference, whatever the frame limit", async () => {
    const { id } = await submit(`name: big-reduce
tasks:
  - { id: split, module: sequence.wasm, params: { count: 3000 } }
  - { id: each, module: blob.wasm, map: { over: split }, params: { size: 4000 } }
  - { id: all, module: tally.wasm, depends_on: [each] }
`);
    const { done, why } = await finish(id);
    expect(done.status, why).toBe("succeeded");
    // 3,000 outputs of 4,000 bytes, each 5,336 characters of base64 in the envelope.
    expect((await json(id, "all")).bytes).toBeGreaterThan(3000 * 5336);
  });

  it("an array longer than max_instances fails the task it came from, naming the cap", async () => {
    const { id } = await submit(`name: over-cap
tasks:
  - { id: split, module: sequence.wasm, params: { count: 20 } }
  - { id: each, module: noop.wasm, map: { over: split, max_instances: 10 } }
`);
    const done = await cluster.client.wait(id);
    expect(done.status).toBe("failed");
    const run = await cluster.client.run(id);
    const split = run.tasks.find((t) => t.id === "split")!;
    expect(split.state).toBe("failed");
    expect(split.attempts.at(-1)!.error).toBe(
      'task "each" maps over this output (map.over): its 20 elements are more than max_instances, 10 (raise map.max_instances, at most 100,000)',
    );
    expect(node(run, "each").instances).toBe(0);
  });

  it("map over a folder of 200 files: one instance per file, its bytes its input", async () => {
    const dir = join(cluster.dir, "photos");
    mkdirSync(join(dir, "sub"), { recursive: true });
    const names = Array.from({ length: 200 }, (_, i) =>
      i < 10 ? `sub/f${i}.bin` : `f${String(i).padStart(3, "0")}.bin`,
    );
    names.forEach((name, i) => writeFileSync(join(dir, name), `file ${i} ${"#".repeat(i)}`));
    const dag = join(cluster.dir, "files.yaml");
    writeFileSync(
      dag,
      `name: files\ncache: false\ninputs: [photos]\ntasks:\n  - { id: each, module: echo.wasm, map: { files: photos } }\n  - { id: all, module: echo.wasm, depends_on: [each, photos] }\n`,
    );
    const { code, out } = await cluster.distro("submit", dag, "--input", `photos=${dir}`, "--watch", "--json");
    expect(code).toBe(0);
    const id = (JSON.parse(out) as { id: string }).id;
    const all = (await json(id, "all")).inputs as {
      each: { item: string; inputs: { photos: { name: string; $bytes: string; size: number } } }[];
      photos: { name: string; size: number; sha256: string }[];
    };
    const sorted = [...names].sort();
    expect(all.each.map((e) => e.item)).toEqual(sorted);
    for (const [k, e] of all.each.entries()) {
      const i = names.indexOf(sorted[k]!);
      expect(Buffer.from(e.inputs.photos.$bytes, "base64").toString()).toBe(`file ${i} ${"#".repeat(i)}`);
    }
    // A task that names the folder reads its listing, not its bytes.
    expect(all.photos).toHaveLength(200);
    expect(Object.keys(all.photos[0]!).sort()).toEqual(["name", "sha256", "size"]);
  });

  it("a file over the blob limit goes as parts, and the task gets it whole", async () => {
    const bytes = Buffer.alloc(17 * 1024 * 1024 + 5);
    for (let i = 0; i < bytes.length; i += 4096) bytes.writeUInt32BE(i, i);
    const file = join(cluster.dir, "big.bin");
    writeFileSync(file, bytes);
    const dag = join(cluster.dir, "big.yaml");
    writeFileSync(
      dag,
      "name: parts\ncache: false\ninputs: [big]\ntasks:\n  - { id: sum, module: digest.wasm, depends_on: [big] }\n",
    );
    const { code, out, err } = await cluster.distro("submit", dag, "--input", `big=${file}`, "--wait");
    expect([code, err]).toEqual([0, ""]);
    expect(out).toContain("inputs: 2 blobs uploaded (17 MiB)");
    const sha256 = createHash("sha256").update(bytes).digest("hex");
    expect(JSON.parse(/^sum: (.*)$/m.exec(out)![1]!)).toEqual({ input: "big", size: bytes.length, sha256 });
  });

  it("distro submit refuses an --input the DAG does not declare, a missing one and a --chunk with nothing to cut, before uploading", async () => {
    const file = join(cluster.dir, "small.txt");
    writeFileSync(file, "a b c\n");
    const extra = await cluster.distro(
      "submit",
      "dags/wordcount.yaml",
      "--input",
      `text=${file}`,
      "--input",
      `other=${file}`,
    );
    expect([extra.code, extra.err.trim()]).toEqual([2, expect.stringContaining("--input other: ") as unknown]);
    expect(extra.err).toContain("declares no such input (it declares text)");
    expect(extra.out).not.toContain("inputs:");
    const missing = await cluster.distro("submit", "dags/wordcount.yaml");
    expect([missing.code, missing.err]).toEqual([2, expect.stringContaining("needs --input text=PATH") as unknown]);
    const dag = join(cluster.dir, "whole.yaml");
    writeFileSync(dag, "name: whole\ninputs: [text]\ntasks:\n  - { id: a, module: echo.wasm, depends_on: [text] }\n");
    const chunk = await cluster.distro("submit", dag, "--input", `text=${file}`, "--chunk", "1KiB");
    expect([chunk.code, chunk.err]).toEqual([
      2,
      expect.stringContaining("--chunk cuts a file input that a `map: { files }` goes over") as unknown,
    ]);
    const gone = await cluster.distro(
      "submit",
      "dags/wordcount.yaml",
      "--input",
      `text=${join(cluster.dir, "nope.txt")}`,
    );
    expect([gone.code, gone.err]).toEqual([2, expect.stringContaining("--input text: cannot read") as unknown]);
  });

  it("a submission missing a declared input, or with a blob never uploaded, is a 400 naming it", async () => {
    const dag = "name: needs\ninputs: [text]\ntasks:\n  - { id: a, module: noop.wasm, depends_on: [text] }\n";
    const post = (body: unknown) =>
      fetch(new URL("/api/dags", cluster.coordinator.url), {
        method: "POST",
        headers: { Authorization: `Bearer ${DEV_TOKENS.api}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    const missing = await post({ dag });
    expect(missing.status).toBe(400);
    expect(JSON.stringify(await missing.json())).toContain('input \\"text\\" is not given');
    const file = { name: "t.txt", size: 3, sha256: "ab".repeat(32) };
    const absent = await post({ dag, inputs: { text: { file } } });
    expect(absent.status).toBe(400);
    expect(JSON.stringify(await absent.json())).toContain(`blob sha256:${"ab".repeat(32)} is not uploaded`);
    const typed = await post({
      dag: "params: { n: { type: integer, default: 1 } }\n" + dag,
      params: { n: "x" },
      inputs: { text: { value: 1 } },
    });
    expect(typed.status).toBe(400);
    expect(JSON.stringify(await typed.json())).toContain("param n is of type integer");
  });
});
