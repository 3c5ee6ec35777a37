/**
 * Imported first by main.ts, before anything that builds a zod schema (core/dag/schema.ts): zod
 * compiles object parsers with `new Function` unless told not to, which the page's
 * Content-Security-Policy (no 'unsafe-eval') refuses. Jitless, it parses by interpretation.
 */
import { config } from "zod";

config({ jitless: true });
