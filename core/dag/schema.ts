/**
 * The DAG file format (v1) as a zod schema: field names, types, defaults and units.
 * Structural checks that span tasks (duplicates, unknown dependencies, cycles) live in
 * `parse.ts`; this file only says what one document may look like.
 */
import { z } from "zod";
import { parseDuration, parseSize } from "../units.js";

/** Limits that keep one run within what a Durable Object can schedule. */
export const DAG_LIMITS = {
  /** Task instances in one run, counting each instance of a mapped task. */
  maxInstances: 100_000,
  /** Highest retry count a task may ask for. */
  maxRetries: 20,
  /** Highest count of lost attempts (runner gone, lease expired) a task may allow. */
  maxLostRetries: 100,
  /** Longest timeout a task may ask for. */
  maxTimeoutMs: 3_600_000,
  /** Largest memory a task may ask for (the wasm32 ceiling). */
  maxMemoryBytes: 4 * 1024 ** 3,
  /**
   * Largest definition of one task as JSON, its `map.items` and `params` included: a run keeps
   * each in one SQLite value, which workerd caps at 2 MB.
   */
  maxTaskBytes: 1_000_000,
  /** The default `max_instances` of a map whose width comes from data (`over`, `files`). */
  defaultMapInstances: 10_000,
  /** Largest map item of a `map: { over }` instance, as JSON (each is kept in one SQLite value). */
  maxItemBytes: 1_000_000,
  /** Most JSON values (elements and members, nested ones too) in an output a map goes over. */
  maxMapValues: 1_000_000,
  /** Largest JSON of the DAG-level params (those given at submit included), copied into every task. */
  maxParamsBytes: 100_000,
} as const;

export const TASK_DEFAULTS = {
  retries: 2,
  lostRetries: 10,
  retryDelayMs: 1000,
  retryDelayMaxMs: 60_000,
  timeoutMs: 30_000,
  memoryBytes: 256 * 1024 ** 2,
  priority: 0,
} as const;

const ID = /^(?!__proto__$)[A-Za-z_][A-Za-z0-9_-]{0,127}$/;

const duration = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const ms = parseDuration(value);
  if (ms === undefined || ms > DAG_LIMITS.maxTimeoutMs) {
    ctx.issues.push({
      code: "custom",
      input: value,
      message: `expected a duration such as "30s", "500ms" or "2m" (at most 1h), got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return ms;
});

const size = z.union([z.string(), z.number()]).transform((value, ctx) => {
  const bytes = parseSize(value);
  if (bytes === undefined || bytes > DAG_LIMITS.maxMemoryBytes) {
    ctx.issues.push({
      code: "custom",
      input: value,
      message: `expected a size such as "64MiB" or "1GiB" (at most 4GiB), got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return bytes;
});

/** A retry delay: a duration, or 0 for none. */
const delay = z.union([z.literal(0), duration]);

/** Scalars in args and env are written as strings; YAML turns `3` into a number, so accept both. */
const text = z.union([z.string(), z.number(), z.boolean()]).transform(String);

const retries = z.number().int().min(0).max(DAG_LIMITS.maxRetries);
const lostRetries = z.number().int().min(0).max(DAG_LIMITS.maxLostRetries);
const priority = z.number().int().min(-1000).max(1000);

const maxInstances = z.number().int().min(1).max(DAG_LIMITS.maxInstances).optional();

const map = z.union([
  z.strictObject({ items: z.array(z.unknown()).min(1, "map.items needs at least one item") }),
  /** One instance per element of the JSON array a task outputs, created when that task succeeds. */
  z.strictObject({ over: z.string().regex(ID, "map.over names a task"), max_instances: maxInstances }),
  /** One instance per file of a folder input. */
  z.strictObject({ files: z.string().regex(ID, "map.files names an input"), max_instances: maxInstances }),
  z.strictObject({
    range: z
      .tuple([z.number().int(), z.number().int()])
      .refine(([start, end]) => end > start, "map.range is [start, end) with end > start"),
  }),
]);

const requires = z.strictObject({
  memory: size.optional(),
  cores: z.number().int().positive().optional(),
  labels: z.array(z.string().min(1)).optional(),
  arch: z.string().min(1).optional(),
  platform: z.string().min(1).optional(),
});

/** What a task may set, and `defaults:` for every task: how it is retried, limited and ranked. */
const policy = {
  retries: retries.optional(),
  lost_retries: lostRetries.optional(),
  retry_delay: delay.optional(),
  retry_delay_max: delay.optional(),
  timeout: duration.optional(),
  memory: size.optional(),
  priority: priority.optional(),
};

const task = z.strictObject({
  id: z
    .string()
    .regex(ID, "task ids start with a letter or _ and hold letters, digits, _ and - (at most 128; not __proto__)"),
  module: z.string().min(1),
  depends_on: z.array(z.string()).default([]),
  map: map.optional(),
  args: z.array(text).default([]),
  env: z.record(z.string(), text).default({}),
  params: z.record(z.string(), z.unknown()).default({}),
  ...policy,
  requires: requires.optional(),
  /** Reuse a result cached for the same module and envelope (default true). */
  cache: z.boolean().optional(),
});

export const dagSchema = z.strictObject({
  name: z.string().min(1).max(200).optional(),
  defaults: z.strictObject(policy).default({}),
  params: z.record(z.string(), z.unknown()).default({}),
  /** Named data the submission gives the run (files, folders, values), read by tasks that name them. */
  inputs: z
    .array(
      z.string().regex(ID, "input names start with a letter or _ and hold letters, digits, _ and - (not __proto__)"),
    )
    .default([]),
  /** `cache: false` turns the result cache off for every task of the DAG. */
  cache: z.boolean().default(true),
  tasks: z
    .array(task, { error: (issue) => (issue.input === undefined ? "a DAG needs a `tasks` list" : undefined) })
    .min(1, "a DAG needs at least one task"),
});

export type DagDocument = z.output<typeof dagSchema>;
