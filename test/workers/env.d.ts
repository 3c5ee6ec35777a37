// The bindings `env` from cloudflare:test carries: the Worker's own (wrangler.toml and the test vars).
import type { Env as WorkerEnv } from "../../worker/env";

declare global {
  namespace Cloudflare {
    // eslint-disable-next-line @typescript-eslint/no-empty-object-type -- declaration merging, not a new type
    interface Env extends WorkerEnv {}
  }
}
