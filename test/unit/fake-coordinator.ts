// A coordinator on a free port of 127.0.0.1 for the runner's unit tests: `POST /api/runners/enroll`
// answers as the test says (by default: a new device for every request, the credential
// `<device>.<secret>`), and socket upgrades go to the test's `upgrade` (accept, or refuse with a
// status and an {error} body). Every request's Authorization header is kept.
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { WebSocketServer, type WebSocket } from "ws";
import type { EnrollAnswer } from "../../core/api";

export interface FakeCoordinator {
  url: URL;
  /** The Authorization header of every enroll request, in order. */
  enrolls: string[];
  /** The Authorization header of every socket upgrade, in order. */
  upgrades: string[];
  /** Sockets accepted, by `run` (or "pool"). */
  sockets: Map<string, WebSocket>;
  close(): Promise<void>;
}

export type Answer = { status: number; body: unknown };

export interface FakeOptions {
  /** The port to listen on (default: a free one). */
  port?: number;
  /**
   * The answer to the n-th enroll request (undefined, or no function: 200 with the n-th device
   * named after the body's name, answerFor()).
   */
  enroll?: (
    authorization: string,
    body: { name?: string; device?: string },
    n: number,
  ) => Answer | undefined | Promise<Answer>;
  /** The answer to an upgrade: undefined accepts it (default), an Answer refuses it. */
  upgrade?: (req: IncomingMessage) => Answer | undefined;
  onConnection?: (ws: WebSocket, run: string) => void;
}

/**
 * The k-th device a default fake coordinator enrolls: `<name>-0000000k`, or the device id asked
 * for, with a 43-character secret.
 */
export function answerFor(name: string, k: number, labels: string[] = [], asked?: string): EnrollAnswer {
  const device = asked ?? `${name}-${k.toString(16).padStart(8, "0")}`;
  return { device, credential: `${device}.${"s".repeat(42)}${k % 10}`, labels, trusted: false, enrollment: null };
}

export async function fakeCoordinator(options: FakeOptions = {}): Promise<FakeCoordinator> {
  const enrolls: string[] = [];
  const upgrades: string[] = [];
  const sockets = new Map<string, WebSocket>();
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk.toString()));
    req.on("end", () => {
      void (async () => {
        if (req.method !== "POST" || req.url !== "/api/runners/enroll") {
          res.writeHead(404, { "Content-Type": "application/json" }).end(JSON.stringify({ error: "not found" }));
          return;
        }
        enrolls.push(req.headers.authorization ?? "");
        const body = JSON.parse(text || "{}") as { name?: string; device?: string };
        const answer = (await options.enroll?.(req.headers.authorization ?? "", body, enrolls.length)) ?? {
          status: 200,
          body: answerFor(body.name ?? "runner", enrolls.length, [], body.device),
        };
        res.writeHead(answer.status, { "Content-Type": "application/json" }).end(JSON.stringify(answer.body));
      })();
    });
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrades.push(req.headers.authorization ?? "");
    const refusal = options.upgrade?.(req);
    if (refusal) {
      const body = JSON.stringify(refusal.body);
      socket.end(
        `HTTP/1.1 ${refusal.status} Refused\r\nContent-Type: application/json\r\n` +
          `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      const run = new URL(req.url ?? "/", "http://x").searchParams.get("run") ?? "pool";
      sockets.set(run, ws);
      options.onConnection?.(ws, run);
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port ?? 0, "127.0.0.1", resolve));
  const url = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  return {
    url,
    enrolls,
    upgrades,
    sockets,
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
