/**
 * DAG-level params: declared with a type (`tiles: { type: integer, default: 64, min: 1 }`) or
 * given a plain value (its default, whose JSON type is its type), overridden at submit, and
 * substituted as `{{params.x}}` into the fields that shape the run (`map`, `requires`, `timeout`,
 * `memory` and the other policy fields) before the document is validated. parse.ts calls these;
 * the CLI calls `coerceParam` to read a `--param` value as its declared type.
 */

const PARAM_TYPES = ["string", "integer", "number", "boolean", "array", "object"] as const;
export type ParamType = (typeof PARAM_TYPES)[number];

/** A param as the DAG declares it, a plain value turned into a declaration of its own type. */
export interface ParamDecl {
  type: ParamType | null;
  default?: unknown;
  min?: number;
  max?: number;
  enum?: unknown[];
}

const DECL_KEYS = new Set(["type", "default", "min", "max", "enum", "description"]);

/** A problem with one param: its name and what is wrong. */
export interface ParamProblem {
  param: string;
  message: string;
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === "object" && !Array.isArray(v);

/** The JSON type of a value, as a param type (a whole number is an integer). */
function typeOf(value: unknown): ParamType | "null" {
  if (value === null || value === undefined) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  if (typeof value === "string" || typeof value === "boolean") return typeof value as "string" | "boolean";
  return "object";
}

/**
 * The declaration of each param of a DAG's `params:` mapping, or problems: an entry is a
 * declaration when it is a mapping with a known `type` and only declaration keys.
 */
export function declarations(params: Record<string, unknown>): {
  decls: Map<string, ParamDecl>;
  problems: ParamProblem[];
} {
  const decls = new Map<string, ParamDecl>();
  const problems: ParamProblem[] = [];
  for (const [name, entry] of Object.entries(params)) {
    const declared = isObject(entry) && "type" in entry && Object.keys(entry).every((k) => DECL_KEYS.has(k));
    if (!declared) {
      // A plain value is its own default; a number stays a number whatever its digits.
      const type = typeOf(entry);
      decls.set(name, { type: type === "null" ? null : type === "integer" ? "number" : type, default: entry });
      continue;
    }
    const { type, default: fallback, min, max, enum: choices } = entry;
    if (!(PARAM_TYPES as readonly unknown[]).includes(type)) {
      problems.push({
        param: name,
        message: `type must be one of ${PARAM_TYPES.join(", ")}, not ${JSON.stringify(type)}`,
      });
      continue;
    }
    if ((min !== undefined && typeof min !== "number") || (max !== undefined && typeof max !== "number")) {
      problems.push({ param: name, message: "min and max are numbers" });
      continue;
    }
    if (choices !== undefined && (!Array.isArray(choices) || choices.length === 0)) {
      problems.push({ param: name, message: "enum is a non-empty list of the values allowed" });
      continue;
    }
    const decl: ParamDecl = { type: type as ParamType, min, max, enum: choices as unknown[] | undefined };
    if (fallback !== undefined) {
      const wrong = check(name, decl, fallback);
      if (wrong) problems.push({ param: name, message: `its default: ${wrong}` });
      decl.default = fallback;
    }
    decls.set(name, decl);
  }
  return { decls, problems };
}

/** What is wrong with `value` for a param declared `decl`, or null. */
function check(name: string, decl: ParamDecl, value: unknown): string | null {
  const got = typeOf(value);
  const fits = decl.type === null || got === decl.type || (decl.type === "number" && got === "integer");
  if (!fits)
    return `param ${name} is of type ${decl.type}, got ${got === "null" ? "null" : `${got} ${JSON.stringify(value)}`}`;
  if (typeof value === "number") {
    if (decl.min !== undefined && value < decl.min) return `param ${name} is at least ${decl.min}, got ${value}`;
    if (decl.max !== undefined && value > decl.max) return `param ${name} is at most ${decl.max}, got ${value}`;
  }
  if (decl.enum && !decl.enum.some((v) => JSON.stringify(v) === JSON.stringify(value)))
    return `param ${name} is one of ${decl.enum.map((v) => JSON.stringify(v)).join(", ")}, got ${JSON.stringify(value)}`;
  return null;
}

/**
 * The params' values: each given one checked against its declaration, every other its default.
 * A given param the DAG does not declare, a wrong type, a bound crossed or a declared param with
 * no default left unset is a problem naming the param.
 */
export function resolveParams(
  decls: Map<string, ParamDecl>,
  given: Record<string, unknown>,
): { values: Record<string, unknown>; problems: ParamProblem[] } {
  const values: Record<string, unknown> = {};
  const problems: ParamProblem[] = [];
  for (const name of Object.keys(given)) {
    if (decls.has(name)) continue;
    const known = [...decls.keys()];
    const hint = known.length > 0 ? `; it declares ${known.join(", ")}` : "; it declares none";
    problems.push({ param: name, message: `unknown param ${name}: the DAG has no such param${hint}` });
  }
  for (const [name, decl] of decls) {
    const value = Object.hasOwn(given, name) ? given[name] : decl.default;
    if (value === undefined) {
      problems.push({ param: name, message: `param ${name} (${decl.type}) has no default: give it at submit` });
      continue;
    }
    const wrong = check(name, decl, value);
    if (wrong) problems.push({ param: name, message: wrong });
    else values[name] = value;
  }
  return { values, problems };
}

/** A `--param` value as its declared type: a string param takes the text as it is, any other JSON. */
export function coerceParam(text: string, type: ParamType | null | undefined): unknown {
  if (type === "string") return text;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const PLACEHOLDER = /\{\{\s*params\.([A-Za-z0-9_.-]+)\s*\}\}/g;
const WHOLE = /^\{\{\s*params\.([A-Za-z0-9_.-]+)\s*\}\}$/;

function lookup(params: Record<string, unknown>, path: string): unknown {
  let value: unknown = params;
  for (const part of path.split(".")) {
    // Own keys only: `{{params.constructor}}` names no param, not Object.prototype's function.
    if (!isObject(value) || !Object.hasOwn(value, part)) return undefined;
    value = value[part];
  }
  return value;
}

/**
 * `value` with `{{params.x}}` substituted in every string within it: a string that is only the
 * placeholder becomes the param's value (a number stays a number), one with text around it
 * becomes text. Calls `unknown` for a placeholder naming no param (and leaves it as written).
 */
export function substituteParams(
  value: unknown,
  params: Record<string, unknown>,
  unknown: (path: (string | number)[], param: string) => void,
  budget: { left: number },
  path: (string | number)[] = [],
): unknown {
  // Each value put in is paid for from `budget` (characters): past it, nothing more is put in.
  const pay = (found: unknown) =>
    (budget.left -= typeof found === "string" ? found.length : JSON.stringify(found).length);
  if (typeof value === "string") {
    const whole = WHOLE.exec(value);
    if (whole) {
      const found = lookup(params, whole[1]!);
      if (found === undefined) unknown(path, whole[1]!);
      if (found === undefined || pay(found) < 0) return value;
      return found;
    }
    return value.replace(PLACEHOLDER, (all, name: string) => {
      const found = lookup(params, name);
      if (found === undefined) {
        unknown(path, name);
        return all;
      }
      if (pay(found) < 0) return all;
      return typeof found === "string" ? found : JSON.stringify(found);
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => substituteParams(v, params, unknown, budget, [...path, i]));
  if (isObject(value))
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, substituteParams(v, params, unknown, budget, [...path, k])]),
    );
  return value;
}
