/**
 * A small client for the coordinator's HTTP API, used by the `distro` CLI, `npm start`, the
 * benchmark and end-to-end tests. Every non-2xx answer becomes an ApiError carrying the
 * coordinator's JSON error (and its problems, for a rejected DAG).
 */
import WebSocket from "ws";
import type {
  ControlAnswer,
  EnrollmentCreated,
  EnrollmentRequest,
  ModuleInfo,
  ErrorBody,
  Problem,
  RevokeAnswer,
  RunListing,
  RunnerListing,
  RunSummary,
  RunView,
  SubmitAnswer,
  SubmitBody,
  TrustAnswer,
} from "../core/api.js";
import type { WatchMessage } from "../core/protocol/watch.js";
import { isFinal } from "../core/status.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly problems: Problem[] = [],
  ) {
    super(message);
  }
}

export class Client {
  constructor(
    readonly coordinator: URL,
    private readonly token: string,
  ) {}

  private async request(path: string, init: RequestInit = {}): Promise<Response> {
    const url = new URL(path, this.coordinator);
    let res: Response;
    try {
      res = await fetch(url, { ...init, headers: { Authorization: `Bearer ${this.token}`, ...init.headers } });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (e as Error).message;
      throw new ApiError(0, `cannot reach the coordinator at ${this.coordinator.origin}: ${why}`);
    }
    if (res.ok) return res;
    const text = await res.text();
    let body: Partial<ErrorBody> = {};
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      body = { error: text.slice(0, 500) };
    }
    // An answer that is not the coordinator's (an empty or foreign body) still says its status.
    const said = typeof body.error === "string" && body.error.trim() !== "" ? body.error : undefined;
    const status = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ""}`;
    throw new ApiError(
      res.status,
      said ?? `${status} from ${this.coordinator.origin} (is it a Distro coordinator?)`,
      body.problems ?? [],
    );
  }

  async json<T>(path: string, init?: RequestInit): Promise<T> {
    return (await (await this.request(path, init)).json()) as T;
  }

  uploadModule(name: string, bytes: Uint8Array<ArrayBuffer>): Promise<ModuleInfo> {
    return this.json(`/api/modules/${encodeURIComponent(name)}`, {
      method: "PUT",
      body: new Blob([bytes]),
      headers: { "Content-Type": "application/wasm" },
    });
  }

  /** Submits a DAG; with params or inputs, as a JSON submission (`SubmitBody`). */
  submit(yaml: string, extra: Omit<SubmitBody, "dag"> = {}): Promise<SubmitAnswer> {
    if (Object.keys(extra.params ?? {}).length === 0 && Object.keys(extra.inputs ?? {}).length === 0)
      return this.json("/api/dags", { method: "POST", body: yaml, headers: { "Content-Type": "application/yaml" } });
    const body: SubmitBody = { dag: yaml, ...extra };
    return this.json("/api/dags", {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "Content-Type": "application/json" },
    });
  }

  /** Whether the coordinator has the blob `sha256`. */
  async hasBlob(sha256: string): Promise<boolean> {
    try {
      await this.request(`/api/blobs/sha256:${sha256}`, { method: "HEAD" });
      return true;
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) return false;
      throw e;
    }
  }

  /** Uploads a blob, streamed, telling `onSent` how many bytes have gone. */
  async putBlob(sha256: string, bytes: Uint8Array, onSent: (bytes: number) => void = () => {}): Promise<void> {
    const step = 256 * 1024;
    let at = 0;
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (at >= bytes.length) {
          controller.close();
          return;
        }
        const piece = bytes.subarray(at, Math.min(at + step, bytes.length));
        at += piece.length;
        controller.enqueue(piece);
        onSent(at);
      },
    });
    await this.request(`/api/blobs/sha256:${sha256}`, {
      method: "PUT",
      body,
      duplex: "half",
      headers: { "Content-Type": "application/octet-stream", "Content-Length": String(bytes.length) },
    } as RequestInit);
  }

  /** The run with its nodes and every task and attempt. */
  run(id: string): Promise<RunView> {
    return this.json(`/api/dags/${id}`);
  }

  /** The run's status and counts only: cheap to poll, whatever the run's size. */
  summary(id: string): Promise<RunSummary> {
    return this.json(`/api/dags/${id}?summary`);
  }

  control(id: string, action: "cancel" | "pause" | "resume"): Promise<ControlAnswer> {
    return this.json(`/api/dags/${id}/${action}`, { method: "POST" });
  }

  async output(id: string, task: string): Promise<Uint8Array> {
    return (await this.outputWithType(id, task)).bytes;
  }

  async outputWithType(id: string, task: string): Promise<{ bytes: Uint8Array; type: string }> {
    const res = await this.request(`/api/dags/${id}/tasks/${encodeURIComponent(task)}/output`);
    return {
      bytes: new Uint8Array(await res.arrayBuffer()),
      type: res.headers.get("Content-Type") ?? "application/octet-stream",
    };
  }

  /**
   * Follows a run to its end over its watch socket, calling `onRun` with every snapshot and
   * update; polls instead when the socket cannot be used or breaks.
   */
  async follow(id: string, onRun: (run: RunSummary) => void = () => {}): Promise<RunSummary> {
    try {
      return await this.watch(id, onRun);
    } catch {
      return this.wait(id, onRun);
    }
  }

  /** The watch socket: resolves with the run as soon as an update says it ended. */
  watch(id: string, onRun: (run: RunSummary) => void): Promise<RunSummary> {
    return new Promise((resolve, reject) => {
      const url = new URL(`/api/dags/${id}/watch`, this.coordinator);
      url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(url, { headers: { Authorization: `Bearer ${this.token}` }, perMessageDeflate: false });
      let last: RunSummary | undefined;
      ws.on("message", (data) => {
        const text = (
          Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data)
        ).toString();
        const message = JSON.parse(text) as WatchMessage;
        last = message.run;
        onRun(last);
        if (isFinal(last.status)) {
          resolve(last);
          ws.terminate(); // the run is over; no need to wait out the closing handshake
        }
      });
      ws.on("close", (code) =>
        code === 4000 && last ? resolve(last) : reject(new Error(`the watch socket closed with code ${code}`)),
      );
      ws.on("error", reject);
    });
  }

  runs(limit = 20): Promise<{ runs: RunListing[] }> {
    return this.json(`/api/dags?limit=${limit}`);
  }

  /** Connected runner processes and every enrolled device. */
  runners(): Promise<RunnerListing> {
    return this.json("/api/runners");
  }

  /** A new enrollment: its token (shown once) and the commands that join a device with it. */
  enroll(request: EnrollmentRequest): Promise<EnrollmentCreated> {
    return this.json("/api/enrollments", {
      method: "POST",
      body: JSON.stringify(request),
      headers: { "Content-Type": "application/json" },
    });
  }

  /** Revokes a device: its credential stops working and its sockets close. */
  revoke(device: string): Promise<RevokeAnswer> {
    return this.json(`/api/runners/${encodeURIComponent(device)}`, { method: "DELETE" });
  }

  /**
   * Trusts a device (its accepted outputs are filed in the result cache from now on), or untrusts
   * it, which purges the cache entries it produced.
   */
  trust(device: string, trusted: boolean): Promise<TrustAnswer> {
    return this.json(`/api/runners/${encodeURIComponent(device)}/trust`, { method: trusted ? "PUT" : "DELETE" });
  }

  /** Polls a run until it ends, calling `onChange` whenever its counts move. */
  async wait(id: string, onChange: (run: RunSummary) => void = () => {}, intervalMs = 250): Promise<RunSummary> {
    let last = "";
    for (;;) {
      const run = await this.summary(id);
      const key = `${run.status} ${JSON.stringify(run.counts)}`;
      if (key !== last) {
        last = key;
        onChange(run);
      }
      if (isFinal(run.status)) return run;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
  }
}
