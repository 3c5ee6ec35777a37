// A run's `meta` table as a Map, for the unit tests of the DagRun's concerns (worker/run-host/).
import type { Meta } from "../../worker/run-host/meta";

export function metaMap(): Meta & { values: Map<string, string> } {
  const values = new Map<string, string>();
  return {
    values,
    meta: (key) => values.get(key),
    setMeta: (key, value) => void values.set(key, value),
    deleteMeta: (key) => void values.delete(key),
  };
}
