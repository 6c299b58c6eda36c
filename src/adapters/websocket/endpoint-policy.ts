import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import type { EndpointPolicy } from "../../config.ts";

/**
 * SSRF guard for adapter endpoints. The server dials URLs its API clients give it, so it must not become a
 * way into addresses they could not reach themselves. Every resolved address is checked, and the dial is
 * pinned to the checked address so a second DNS answer cannot swap it (DNS rebinding).
 */
const ALWAYS_DENIED: [string, number, "ipv4" | "ipv6"][] = [
  ["169.254.0.0", 16, "ipv4"], // link-local, incl. 169.254.169.254 cloud metadata
  ["0.0.0.0", 8, "ipv4"],
  ["fe80::", 10, "ipv6"],
  ["fd00:ec2::", 32, "ipv6"], // AWS IMDS over IPv6
];
const PRIVATE: [string, number, "ipv4" | "ipv6"][] = [
  ["127.0.0.0", 8, "ipv4"],
  ["10.0.0.0", 8, "ipv4"],
  ["172.16.0.0", 12, "ipv4"],
  ["192.168.0.0", 16, "ipv4"],
  ["100.64.0.0", 10, "ipv4"],
  ["::1", 128, "ipv6"],
  ["fc00::", 7, "ipv6"],
];

function blockList(policy: EndpointPolicy): BlockList {
  const list = new BlockList();
  for (const [net, prefix, type] of [...ALWAYS_DENIED, ...(policy === "strict" ? PRIVATE : [])])
    list.addSubnet(net, prefix, type);
  return list;
}

const LISTS: Record<EndpointPolicy, BlockList> = {
  default: blockList("default"),
  strict: blockList("strict"),
};

export type EndpointCheck =
  | { ok: true; url: URL; address: string; family: 4 | 6 }
  | { ok: false; reason: "invalid" | "denied" | "unresolvable"; description: string };

/** Parse only: is this a ws:// or wss:// URL? (406 invalid_params territory.) */
export function parseEndpoint(endpoint: string): URL | undefined {
  try {
    const url = new URL(endpoint);
    return url.protocol === "ws:" || url.protocol === "wss:" ? url : undefined;
  } catch {
    return undefined;
  }
}

function denied(address: string, family: 4 | 6, policy: EndpointPolicy): boolean {
  const list = LISTS[policy];
  if (family === 6 && address.toLowerCase().startsWith("::ffff:")) {
    // IPv4-mapped IPv6 must not smuggle a denied IPv4 address past the IPv4 rules.
    const v4 = address.slice(7);
    if (isIP(v4) === 4) return list.check(v4, "ipv4");
  }
  return list.check(address, family === 4 ? "ipv4" : "ipv6");
}

export async function checkEndpoint(url: URL, policy: EndpointPolicy): Promise<EndpointCheck> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  let addresses: { address: string; family: number }[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host, { all: true });
    } catch (err) {
      return {
        ok: false,
        reason: "unresolvable",
        description: `cannot resolve ${host}: ${(err as Error).message}`,
      };
    }
  }
  if (addresses.length === 0)
    return { ok: false, reason: "unresolvable", description: `no address for ${host}` };
  for (const a of addresses) {
    if (denied(a.address, a.family as 4 | 6, policy))
      return {
        ok: false,
        reason: "denied",
        description: `${host} resolves to ${a.address}, which the ${policy} endpoint policy does not allow`,
      };
  }
  const first = addresses[0];
  return { ok: true, url, address: first.address, family: first.family as 4 | 6 };
}
