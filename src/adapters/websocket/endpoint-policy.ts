import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import type { EndpointPolicy } from "../../config.ts";

/**
 * SSRF guard for adapter endpoints. The server dials URLs its API clients give it, so it must not become a
 * way into addresses they could not reach themselves.
 *
 * - Every address a host name resolves to is checked; if ANY of them is denied the endpoint is denied (no
 *   "pick the allowed one": a name that mixes public and internal answers is a rebinding setup, and a
 *   deterministic answer is easier to reason about). The dial is then pinned to the first checked address,
 *   so a second DNS answer cannot swap it (DNS rebinding).
 * - An IPv6 address that carries an IPv4 address (mapped, compatible, SIIT, NAT64, 6to4, Teredo) is judged by
 *   its IPv6 range AND by the IPv4 rules applied to every IPv4 address it carries.
 * - Matching is longest prefix first, over the table below; ipaddr.js parses and matches (its own range()
 *   classification is cross-checked in test/hostile/ssrf.test.ts: strict denies every range it calls special).
 */

/** What kind of address a range holds; the policies are written in these terms (POLICY below). */
type AddressClass =
  | "unspecified" // 0.0.0.0/8, ::  — connecting to it reaches the local host (loopback)
  | "broadcast"
  | "multicast"
  | "link-local"
  | "cloud metadata"
  | "loopback"
  | "private" // RFC 1918, CGNAT shared space, IPv6 unique-local and site-local
  | "special-purpose" // IANA special-purpose: documentation, benchmarking, protocol assignments, reserved…
  | "unallocated" // IPv6 outside 2000::/3 that nothing else names
  | "deprecated IPv4-compatible" // ::a.b.c.d (RFC 4291 §2.5.5.1, deprecated)
  | "local-use NAT64" // 64:ff9b:1::/48 (RFC 8215), an operator's own translator
  | "IPv4-translating" // IPv6 ranges that only carry an IPv4 address (judged by that address)
  | "public";

/** The policy: may an endpoint in this class be dialled? */
const POLICY: Record<AddressClass, Record<EndpointPolicy, "allow" | "deny">> = {
  unspecified: { default: "deny", strict: "deny" },
  broadcast: { default: "deny", strict: "deny" },
  multicast: { default: "deny", strict: "deny" },
  "link-local": { default: "deny", strict: "deny" },
  "cloud metadata": { default: "deny", strict: "deny" },
  loopback: { default: "allow", strict: "deny" },
  private: { default: "allow", strict: "deny" },
  "special-purpose": { default: "allow", strict: "deny" },
  unallocated: { default: "allow", strict: "deny" },
  "deprecated IPv4-compatible": { default: "allow", strict: "deny" }, // + the carried IPv4 address
  "local-use NAT64": { default: "allow", strict: "deny" }, // + every possible carried IPv4
  "IPv4-translating": { default: "allow", strict: "allow" }, // + the carried IPv4 address
  public: { default: "allow", strict: "allow" },
};

/** Where an IPv6 range carries IPv4 addresses (byte array of the IPv6 address → the IPv4 addresses). */
type Carried = (b: number[]) => { v4: number[]; ambiguous?: boolean }[];
const last32: Carried = (b) => [{ v4: b.slice(12, 16) }];
/** RFC 6052 §2.2: the IPv4 address follows a prefix of `len` bits, skipping bits 64–71 (the "u" octet). */
const rfc6052At = (b: number[], len: number): number[] =>
  len === 96 ? b.slice(12, 16) : [...b.slice(len / 8, 8), ...b.slice(9)].slice(0, 4);

interface Range {
  cidr: string;
  class: AddressClass;
  carries?: Carried;
  note?: string;
}

/** Address ranges, IPv4 then IPv6. Anything unlisted is public (IPv4) or, outside 2000::/3, unallocated. */
const RANGES: Range[] = [
  { cidr: "0.0.0.0/8", class: "unspecified", note: '"this network"; 0.0.0.0 reaches loopback' },
  { cidr: "10.0.0.0/8", class: "private" },
  { cidr: "100.64.0.0/10", class: "private", note: "CGNAT shared address space" },
  { cidr: "100.100.100.200/32", class: "cloud metadata", note: "Alibaba Cloud" },
  { cidr: "127.0.0.0/8", class: "loopback" },
  { cidr: "169.254.0.0/16", class: "link-local", note: "incl. 169.254.169.254 cloud metadata" },
  { cidr: "172.16.0.0/12", class: "private" },
  { cidr: "192.0.0.0/24", class: "special-purpose", note: "IETF protocol assignments" },
  { cidr: "192.0.2.0/24", class: "special-purpose", note: "documentation TEST-NET-1" },
  { cidr: "192.31.196.0/24", class: "special-purpose", note: "AS112" },
  { cidr: "192.52.193.0/24", class: "special-purpose", note: "AMT" },
  { cidr: "192.88.99.0/24", class: "special-purpose", note: "6to4 relay anycast (deprecated)" },
  { cidr: "192.168.0.0/16", class: "private" },
  { cidr: "192.175.48.0/24", class: "special-purpose", note: "AS112" },
  { cidr: "198.18.0.0/15", class: "special-purpose", note: "benchmarking" },
  { cidr: "198.51.100.0/24", class: "special-purpose", note: "documentation TEST-NET-2" },
  { cidr: "203.0.113.0/24", class: "special-purpose", note: "documentation TEST-NET-3" },
  { cidr: "224.0.0.0/4", class: "multicast" },
  { cidr: "240.0.0.0/4", class: "special-purpose", note: "reserved" },
  { cidr: "255.255.255.255/32", class: "broadcast" },

  { cidr: "::/0", class: "unallocated" },
  { cidr: "2000::/3", class: "public", note: "IANA global unicast" },
  { cidr: "::/128", class: "unspecified", note: "reaches loopback" },
  { cidr: "::1/128", class: "loopback" },
  { cidr: "::/96", class: "deprecated IPv4-compatible", carries: last32 },
  { cidr: "::ffff:0:0/96", class: "IPv4-translating", carries: last32, note: "IPv4-mapped" },
  { cidr: "::ffff:0:0:0/96", class: "IPv4-translating", carries: last32, note: "SIIT IPv4-translated" },
  { cidr: "64:ff9b::/96", class: "IPv4-translating", carries: last32, note: "NAT64 well-known prefix" },
  {
    cidr: "64:ff9b:1::/48",
    class: "local-use NAT64",
    // The operator picks the prefix length (48, 56, 64 or 96), so the IPv4 address may sit at any of those.
    carries: (b) => [48, 56, 64, 96].map((len) => ({ v4: rfc6052At(b, len), ambiguous: len !== 96 })),
  },
  { cidr: "100::/64", class: "special-purpose", note: "discard-only" },
  { cidr: "2001::/23", class: "special-purpose", note: "IETF protocol assignments (AMT, AS112, ORCHID…)" },
  {
    cidr: "2001::/32",
    class: "IPv4-translating",
    note: "Teredo: server IPv4, then the client IPv4 obfuscated (inverted)",
    carries: (b) => [{ v4: b.slice(4, 8) }, { v4: b.slice(12, 16).map((x) => x ^ 0xff) }],
  },
  { cidr: "2001:2::/48", class: "special-purpose", note: "benchmarking" },
  { cidr: "2001:db8::/32", class: "special-purpose", note: "documentation" },
  { cidr: "2002::/16", class: "IPv4-translating", carries: (b) => [{ v4: b.slice(2, 6) }], note: "6to4" },
  { cidr: "2620:4f:8000::/48", class: "special-purpose", note: "AS112" },
  { cidr: "3fff::/20", class: "special-purpose", note: "documentation" },
  { cidr: "5f00::/16", class: "special-purpose", note: "SRv6 SIDs" },
  { cidr: "fc00::/7", class: "private", note: "unique-local" },
  { cidr: "fd00:ec2::/32", class: "cloud metadata", note: "AWS IMDS over IPv6" },
  { cidr: "fe80::/10", class: "link-local" },
  { cidr: "fec0::/10", class: "private", note: "site-local (deprecated)" },
  { cidr: "ff00::/8", class: "multicast" },
];

/**
 * Host names of cloud metadata services, denied by name under both policies. Defence in depth only: they
 * resolve to link-local addresses, which the address rules deny anyway.
 */
const METADATA_NAMES = new Set(["metadata.google.internal", "metadata.goog"]);

type Parsed = ipaddr.IPv4 | ipaddr.IPv6;
const PARSED_RANGES = RANGES.map((r) => ({ ...r, net: ipaddr.parseCIDR(r.cidr) as [Parsed, number] }))
  // Longest prefix first: the first range that matches is the most specific.
  .sort((a, b) => b.net[1] - a.net[1]);

function rangeOf(addr: Parsed): (typeof PARSED_RANGES)[number] | undefined {
  return PARSED_RANGES.find((r) => r.net[0].kind() === addr.kind() && addr.match(r.net));
}

export interface AddressVerdict {
  allowed: boolean;
  /** The class that decided (for an IPv6 address carrying a denied IPv4 address: that address's class). */
  class: AddressClass;
  /** The carried IPv4 address that decided, if any. */
  via?: string;
}

/** Judges one IP address (a literal, no brackets) under a policy. Unparseable → denied. */
export function judgeAddress(address: string, policy: EndpointPolicy): AddressVerdict {
  let addr: Parsed;
  try {
    addr = ipaddr.parse(address);
  } catch {
    return { allowed: false, class: "special-purpose" };
  }
  const range = rangeOf(addr);
  const cls: AddressClass = range?.class ?? "public";
  if (POLICY[cls][policy] === "deny") return { allowed: false, class: cls };
  for (const { v4, ambiguous } of range?.carries?.(addr.toByteArray()) ?? []) {
    const inner = new ipaddr.IPv4(v4);
    const innerClass = rangeOf(inner)?.class ?? "public";
    // A reading at a position the translator might not use that lands in 0.0.0.0/8 is no destination: a
    // translator never forwards to "this network", so it cannot reach anything (and would otherwise deny
    // every 64:ff9b:1::/96 address, whose /48-/64 readings are zeros).
    if (ambiguous && innerClass === "unspecified") continue;
    if (POLICY[innerClass][policy] === "deny")
      return { allowed: false, class: innerClass, via: inner.toString() };
  }
  return { allowed: true, class: cls };
}

export type EndpointCheck =
  | { ok: true; url: URL; address: string; family: 4 | 6 }
  | { ok: false; reason: "invalid" | "denied" | "unresolvable"; description: string };

/** Resolves a host name to every address (the dns.lookup `all: true` shape). Injectable for tests. */
export type ResolveAll = (host: string) => Promise<{ address: string; family: number }[]>;
const resolveAll: ResolveAll = (host) => dnsLookup(host, { all: true });

/** Parse only: is this a ws:// or wss:// URL? (406 invalid_params territory.) */
export function parseEndpoint(endpoint: string): URL | undefined {
  try {
    const url = new URL(endpoint);
    return url.protocol === "ws:" || url.protocol === "wss:" ? url : undefined;
  } catch {
    return undefined;
  }
}

function explain(v: AddressVerdict): string {
  return v.via ? `an IPv6 address carrying ${v.via} (${v.class})` : `a ${v.class} address`;
}

export async function checkEndpoint(
  url: URL,
  policy: EndpointPolicy,
  options: { lookup?: ResolveAll } = {},
): Promise<EndpointCheck> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  const name = host.toLowerCase().replace(/\.+$/, "");
  if (METADATA_NAMES.has(name))
    return {
      ok: false,
      reason: "denied",
      description: `${host} is a cloud metadata service, which no endpoint policy allows`,
    };
  let addresses: { address: string; family: number }[];
  const literal = isIP(host);
  if (literal) addresses = [{ address: host, family: literal }];
  else {
    try {
      addresses = await (options.lookup ?? resolveAll)(host);
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
    const verdict = judgeAddress(a.address, policy);
    if (!verdict.allowed) {
      // Under strict the resolved address of a name is not echoed: it would map internal DNS for the client.
      const what = literal
        ? `${host} is ${explain(verdict)}`
        : policy === "strict"
          ? `${host} resolves to an address`
          : `${host} resolves to ${a.address}, ${explain(verdict)}`;
      return {
        ok: false,
        reason: "denied",
        description: `${what}, which the ${policy} endpoint policy does not allow`,
      };
    }
  }
  const first = addresses[0];
  return { ok: true, url, address: first.address, family: first.family as 4 | 6 };
}

export const STRICT_DIAL_FAILURE = "the endpoint could not be reached or refused the WebSocket handshake";

/**
 * The handshake failure text an API client may see. Under strict, dial errors ("ECONNREFUSED" vs
 * "Unexpected server response: 200" vs a TLS error) would make the adapter API a port scanner of whatever the
 * policy still allows, so they collapse into one generic text; the default policy keeps the detail.
 */
export function publicDialFailure(policy: EndpointPolicy, description: string): string {
  return policy === "strict" ? STRICT_DIAL_FAILURE : description;
}
