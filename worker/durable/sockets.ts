/**
 * Helpers for the hibernatable runner sockets both Durable Objects accept: each socket carries
 * an attachment naming its runner once that runner has said hello.
 */
import { encode } from "../protocol/codec.js";
import { CLOSE, type CoordinatorMessage } from "../protocol/messages.js";

export interface Attachment {
  runner: string | null;
}

/** Accepts a WebSocket upgrade into `ctx` with an attachment for a runner not yet known. */
export function acceptRunnerSocket(ctx: DurableObjectState, request: Request): Response {
  if (request.headers.get("Upgrade") !== "websocket") return new Response("expected a WebSocket upgrade", { status: 426 });
  const { 0: client, 1: server } = new WebSocketPair();
  ctx.acceptWebSocket(server);
  server.serializeAttachment({ runner: null } satisfies Attachment);
  return new Response(null, { status: 101, webSocket: client });
}

export function runnerOf(ws: WebSocket): string | null {
  return (ws.deserializeAttachment() as Attachment | null)?.runner ?? null;
}

export function setRunner(ws: WebSocket, runner: string): void {
  ws.serializeAttachment({ runner } satisfies Attachment);
}

/** The open sockets of one runner. */
export function socketsOf(ctx: DurableObjectState, runner: string): WebSocket[] {
  return ctx.getWebSockets().filter((ws) => runnerOf(ws) === runner);
}

/** Sends a frame; a socket that closed under us is left to its close handler. */
export function send(ws: WebSocket, message: CoordinatorMessage): void {
  try {
    ws.send(encode(message));
  } catch {
    // closed: webSocketClose handles what the socket held
  }
}

/** Sends a fatal error frame and closes with the protocol close code. */
export function refuse(ws: WebSocket, message: string): void {
  send(ws, { type: "error", message, fatal: true });
  ws.close(CLOSE.protocol, message.slice(0, 120));
}
