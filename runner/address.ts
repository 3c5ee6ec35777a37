/**
 * Whether plain http:// (or ws://) to a coordinator is acceptable without --insecure: only to
 * this machine or a private LAN, where the credential does not cross the internet in the clear.
 * config.ts refuses anything else unless the user says --insecure.
 */
import { BlockList, isIP } from "node:net";

/** Loopback, private, link-local and unique-local ranges (IPv4-mapped IPv6 is checked as IPv4). */
const LOCAL = new BlockList();
for (const [net, prefix] of [
  ["127.0.0.0", 8],
  ["10.0.0.0", 8],
  ["172.16.0.0", 12],
  ["192.168.0.0", 16],
  ["169.254.0.0", 16],
] as const)
  LOCAL.addSubnet(net, prefix, "ipv4");
LOCAL.addAddress("::1", "ipv6");
LOCAL.addSubnet("fc00::", 7, "ipv6");
LOCAL.addSubnet("fe80::", 10, "ipv6");

/**
 * True for a host name (as `URL.hostname` gives it: lower case, IPv6 in brackets) on this machine
 * or a private LAN: `localhost`, `*.local` (mDNS), or an address in the ranges above. Other names
 * are false: what they resolve to is up to DNS.
 */
export function isLocalHost(hostname: string): boolean {
  const host = hostname.replace(/^\[(.*)\]$/, "$1").replace(/\.$/, "");
  if (host === "localhost" || host.endsWith(".local")) return true;
  const family = isIP(host);
  if (family === 0) return false;
  return LOCAL.check(host, family === 4 ? "ipv4" : "ipv6");
}
