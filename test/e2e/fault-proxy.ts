// A TCP proxy between runners and the coordinator that makes the faults phones and networks make:
// `blackhole()` stops forwarding in both directions and keeps every connection open (a phone
// asleep, a half-open link: no FIN, no RST), `cut()` closes every connection and refuses new ones
// (Wi-Fi gone), `delay(ms)` holds each chunk that long, `restore()` ends any of them (a blackholed connection is then closed: it lost
// what was sent meanwhile). Listens on
// 127.0.0.1, a free port; `close()` stops it and its connections.
import { createServer, connect, type Server, type Socket } from "node:net";
import type { AddressInfo } from "node:net";

type Fault = "none" | "blackhole" | "cut";

export interface FaultProxy {
  /** Where runners connect: the coordinator's URL with the proxy's port. */
  url: URL;
  blackhole(): void;
  cut(): void;
  delay(ms: number): void;
  restore(): void;
  /** Connections accepted so far (a reconnect shows as one more). */
  readonly accepted: number;
  close(): Promise<void>;
}

export async function startFaultProxy(target: URL): Promise<FaultProxy> {
  let fault: Fault = "none";
  let delayMs = 0;
  let accepted = 0;
  const pairs = new Set<[Socket, Socket]>();
  const forward = (from: Socket, to: Socket) =>
    from.on("data", (chunk) => {
      if (fault === "blackhole") return; // dropped: the link looks open and carries nothing
      if (delayMs > 0) setTimeout(() => to.writable && to.write(chunk), delayMs);
      else if (to.writable) to.write(chunk);
    });
  const server: Server = createServer((client) => {
    accepted++;
    if (fault === "cut") return void client.destroy();
    const upstream = connect(Number(target.port), target.hostname);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    forward(client, upstream);
    forward(upstream, client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    // A blackholed link does not pass on an end either: that is what makes it half-open.
    for (const s of pair) {
      s.on("error", end);
      s.on("close", () => fault !== "blackhole" && end());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = new URL(target);
  url.port = String((server.address() as AddressInfo).port);
  return {
    url,
    get accepted() {
      return accepted;
    },
    blackhole: () => void (fault = "blackhole"),
    cut: () => {
      fault = "cut";
      for (const pair of pairs) for (const s of pair) s.destroy();
      pairs.clear();
    },
    delay: (ms) => void (delayMs = ms),
    restore: () => {
      // A link that was blackholed lost what was sent meanwhile: it is dead, as after a NAT timeout.
      if (fault === "blackhole") for (const pair of pairs) for (const s of pair) s.destroy();
      if (fault === "blackhole") pairs.clear();
      fault = "none";
      delayMs = 0;
    },
    close: async () => {
      for (const pair of pairs) for (const s of pair) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
