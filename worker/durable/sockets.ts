/**
 * Helpers for the hibernatable runner sockets both Durable Objects accept: each socket carries
 * an attachment naming the device the Worker authenticated, and its runner once that runner has
 * said hello (only a runner id of that device: `<device>` or `<device>.<k>`). Every frame is
 * metered here first (meter.ts), so a socket over its rate limit costs nothing more than the check.
 */
import { decodeRunnerMessage, encode } from "../../core/protocol/codec.js";
import {
  CLOSE,
  HEARTBEAT,
  PROTOCOL_VERSION,
  type CoordinatorMessage,
  type RunnerMessage,
} from "../../core/protocol/messages.js";
import type { RunStatus } from "../../core/status.js";
import { DEVICE_HEADER } from "../rpc.js";
import { entryTokens, frameBytes, type SocketKind, type SocketMeters, type Verdict } from "./meter.js";

interface Attachment {
  /** The device whose credential opened the socket. */
  device: string;
  runner: string | null;
  /** When the runner said hello on this socket (or it opened, before that). */
  since: number;
  /**
   * The coordinator closed it for good (closeSocket): whatever still arrives on it is dropped
   * unread, and it counts as none of its runner's sockets (its close handshake may take a while;
   * a revoked runner must not act through it meanwhile).
   */
  closed?: true;
}

/** Runner processes one device may run side by side, so its sockets in one object. */
const DEVICE_SOCKETS = 16;

/** Whether `runner` is a runner id of `device`: `<device>` or `<device>.<k>` with k from 2 to DEVICE_SOCKETS. */
function ofDevice(runner: string, device: string): boolean {
  if (runner === device) return true;
  if (!runner.startsWith(`${device}.`)) return false;
  const k = runner.slice(device.length + 1);
  return /^[1-9][0-9]?$/.test(k) && Number(k) >= 2 && Number(k) <= DEVICE_SOCKETS;
}

/** Answers heartbeat pings without waking the object. */
export function answerHeartbeats(ctx: DurableObjectState): void {
  ctx.setWebSocketAutoResponse(new WebSocketRequestResponsePair(HEARTBEAT.ping, HEARTBEAT.pong));
}

/** Tag of runner sockets (a DagRun also holds watchers' sockets). */
const RUNNER_TAG = "runner";

/** The open runner sockets of `ctx` (not those the coordinator has closed). */
export function runnerSockets(ctx: DurableObjectState): WebSocket[] {
  return ctx.getWebSockets(RUNNER_TAG).filter((ws) => !attachmentOf(ws)?.closed);
}

/**
 * Sockets silent (no ping, no hello) for `limitMs`, with their runner (null: one that never said
 * hello, which is swept all the same). The caller closes them; what their runner still sends on
 * them (a frozen runner's results, once it thaws) is read as before.
 */
export function silentSockets(
  ctx: DurableObjectState,
  now: number,
  limitMs: number,
): { runner: string | null; ws: WebSocket }[] {
  const silent: { runner: string | null; ws: WebSocket }[] = [];
  for (const ws of runnerSockets(ctx)) {
    const attachment = attachmentOf(ws);
    if (!attachment) continue;
    const pinged = ctx.getWebSocketAutoResponseTimestamp(ws)?.getTime() ?? 0;
    if (now - Math.max(pinged, attachment.since) > limitMs) silent.push({ runner: attachment.runner, ws });
  }
  return silent;
}

/**
 * Closes a runner socket for good, for what it did (revoked, over its rate, a protocol error):
 * marked closed first, so nothing it still sends is read.
 */
export function closeSocket(ws: WebSocket, code: number, reason: string): void {
  const attachment = attachmentOf(ws);
  if (attachment) ws.serializeAttachment({ ...attachment, closed: true } satisfies Attachment);
  try {
    ws.close(code, reason);
  } catch {
    // already closing
  }
}

/**
 * Accepts a WebSocket upgrade into `ctx` for the device the Worker authenticated (DEVICE_HEADER),
 * with an attachment for a runner not yet known; a device at its socket limit gets a 429.
 */
export function acceptRunnerSocket(ctx: DurableObjectState, request: Request): Response {
  if (request.headers.get("Upgrade") !== "websocket")
    return Response.json({ error: "expected a WebSocket upgrade" }, { status: 426 });
  const device = request.headers.get(DEVICE_HEADER);
  if (!device)
    return Response.json({ error: "runner sockets come through the Worker's /api/runners/connect" }, { status: 403 });
  if (socketsOfDevice(ctx, device).length >= DEVICE_SOCKETS)
    return Response.json(
      { error: `device ${device} has ${DEVICE_SOCKETS} sockets open here already (one per runner process)` },
      { status: 429 },
    );
  const { 0: client, 1: server } = new WebSocketPair();
  ctx.acceptWebSocket(server, [RUNNER_TAG]);
  server.serializeAttachment({ device, runner: null, since: Date.now() } satisfies Attachment);
  return new Response(null, { status: 101, webSocket: client });
}

function attachmentOf(ws: WebSocket): Attachment | null {
  return ws.deserializeAttachment() as Attachment | null;
}

/** The devices with a runner that said hello on some socket of `ctx`. */
export function connectedDevices(ctx: DurableObjectState): string[] {
  const devices = new Set<string>();
  for (const ws of runnerSockets(ctx)) {
    const a = attachmentOf(ws);
    if (a?.runner) devices.add(a.device);
  }
  return [...devices];
}

export function runnerOf(ws: WebSocket): string | null {
  return attachmentOf(ws)?.runner ?? null;
}

function setRunner(ws: WebSocket, device: string, runner: string): void {
  ws.serializeAttachment({ device, runner, since: Date.now() } satisfies Attachment);
}

/** The open runner sockets of one device, said hello or not. */
function socketsOfDevice(ctx: DurableObjectState, device: string): WebSocket[] {
  return runnerSockets(ctx).filter((ws) => attachmentOf(ws)?.device === device);
}

/**
 * Closes every socket of a revoked device with CLOSE.revoked and answers the runner ids that said
 * hello on them: the caller forgets them now rather than when the close handshakes end.
 */
export function closeDevice(ctx: DurableObjectState, device: string): { runners: string[]; closed: number } {
  const sockets = socketsOfDevice(ctx, device);
  const runners = new Set<string>();
  for (const ws of sockets) {
    const runner = runnerOf(ws);
    if (runner) runners.add(runner);
    // Forgotten at once: a close handler that runs later finds no runner on it.
    ws.serializeAttachment({ device, runner: null, since: 0 } satisfies Attachment);
    closeSocket(ws, CLOSE.revoked, `device ${device} was revoked`);
  }
  return { runners: [...runners], closed: sockets.length };
}

/** The open sockets of one runner. */
export function socketsOf(ctx: DurableObjectState, runner: string): WebSocket[] {
  return runnerSockets(ctx).filter((ws) => runnerOf(ws) === runner);
}

export type Hello = Extract<RunnerMessage, { type: "hello" }>;
export type RunnerFrame = Exclude<RunnerMessage, { type: "hello" }>;

/** How an object meters one kind of socket, and what it does once it closed one for its rate. */
export interface FrameGate {
  meters: SocketMeters<WebSocket>;
  kind: SocketKind;
  /** After the close: e.g. forget the socket's runner now, rather than when its close handshake ends. */
  limited?(ws: WebSocket): unknown;
}

/**
 * Meters one frame on any socket: false when it must not be processed, because it put the socket
 * over its rate limit (the socket is closed now with CLOSE.rateLimited and a reason naming the
 * count and the limit, then `limited` runs) or came in after that close (dropped unread).
 */
export function admitFrame(gate: FrameGate, ws: WebSocket, raw: string | ArrayBuffer): boolean {
  return judged(gate, ws, gate.meters.check(ws, gate.kind, frameBytes(raw)));
}

/** Attempts a decoded frame lists: each costs the run work, metered as a share of a frame (meter.ts `entryTokens`). */
function entriesOf(msg: RunnerMessage): number {
  if (msg.type === "results") return msg.results.length + msg.started.length;
  if (msg.type === "want") return msg.started.length;
  if (msg.type === "reject" || msg.type === "started") return msg.tasks.length;
  if (msg.type === "hello") return msg.holding.length;
  return 0;
}

/** Acts on a verdict: true to process the frame; a socket over its limit is closed and reported. */
function judged(gate: FrameGate, ws: WebSocket, verdict: Verdict): boolean {
  if (verdict.type !== "close") return verdict.type === "pass";
  const runner = runnerOf(ws);
  console.warn(`closed a ${gate.kind} socket${runner ? ` of runner ${runner}` : ""}: ${verdict.reason}`);
  closeSocket(ws, CLOSE.rateLimited, verdict.reason);
  const failed = (e: unknown) => console.error(`after closing a ${gate.kind} socket for its rate limit`, e);
  try {
    void Promise.resolve(gate.limited?.(ws)).catch(failed);
  } catch (e) {
    failed(e);
  }
  return false;
}

/**
 * Receives one frame on a runner socket: meters it (`gate`), decodes it (a bad frame gets an
 * error frame, the socket stays), admits `hello` in the supported protocol (replacing an older
 * socket of the same runner), refuses any other first frame, and hands the rest to `frame`.
 * Never throws.
 */
export async function receiveFrame(
  ctx: DurableObjectState,
  ws: WebSocket,
  raw: string | ArrayBuffer,
  gate: FrameGate,
  handlers: {
    hello(ws: WebSocket, hello: Hello): unknown;
    frame(ws: WebSocket, runner: string, frame: RunnerFrame): unknown;
  },
): Promise<void> {
  if (attachmentOf(ws)?.closed || !admitFrame(gate, ws, raw)) return;
  try {
    const decoded = decodeRunnerMessage(raw);
    if (!decoded.ok) return send(ws, { type: "error", message: decoded.error, fatal: false });
    const msg = decoded.message;
    const entries = entriesOf(msg);
    if (entries > 0 && !judged(gate, ws, gate.meters.check(ws, gate.kind, 0, entryTokens(entries)))) return;
    if (msg.type === "hello") {
      // One identity per socket: a second hello would leave the first runner's rows and leases behind.
      if (runnerOf(ws)) return refuse(ws, "a socket says hello once; open a new socket to connect again");
      if (msg.protocol !== PROTOCOL_VERSION)
        return refuse(ws, `protocol ${msg.protocol} is not supported; this coordinator speaks ${PROTOCOL_VERSION}`);
      const device = attachmentOf(ws)!.device;
      if (!ofDevice(msg.runner.id, device))
        return refuse(ws, `runner id ${msg.runner.id} is not one of device ${device} (${device} or ${device}.<k>)`);
      // Only the same device can reach here with this id: a restarted process of it takes over.
      for (const other of socketsOf(ctx, msg.runner.id))
        if (other !== ws) other.close(CLOSE.replaced, "replaced by a newer connection");
      setRunner(ws, device, msg.runner.id);
      await handlers.hello(ws, msg);
      return;
    }
    const runner = runnerOf(ws);
    if (!runner) return refuse(ws, `the first frame must be "hello", got "${msg.type}"`);
    await handlers.frame(ws, runner, msg);
  } catch (e) {
    console.error("runner frame", e);
    send(ws, {
      type: "error",
      message: `the coordinator could not process the frame: ${(e as Error).message}`,
      fatal: false,
    });
  }
}

/** The runner of a closing socket, if no other socket of that runner remains open. */
export function lastSocketOf(ctx: DurableObjectState, ws: WebSocket): string | null {
  const runner = runnerOf(ws);
  return runner && !socketsOf(ctx, runner).some((other) => other !== ws) ? runner : null;
}

/** Sends a frame; a socket that closed under us is left to its close handler. */
export function send(ws: WebSocket, message: CoordinatorMessage): void {
  try {
    ws.send(encode(message));
  } catch {
    // closed: webSocketClose handles what the socket held
  }
}

/** Tells a runner its run has ended, and closes the socket. */
export function finishSocket(ws: WebSocket, status: RunStatus): void {
  send(ws, { type: "finished", status });
  // Not closeSocket: a late result that follows is still read, and noted on its attempt.
  ws.close(CLOSE.finished, `run ${status}`);
}

/** Sends a fatal error frame and closes with the protocol close code. */
function refuse(ws: WebSocket, message: string): void {
  send(ws, { type: "error", message, fatal: true });
  closeSocket(ws, CLOSE.protocol, message.slice(0, 120));
}
