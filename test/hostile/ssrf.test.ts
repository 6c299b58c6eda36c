import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import ipaddr from "ipaddr.js";
import { WebSocketServer } from "ws";
import {
  checkEndpoint,
  parseEndpoint,
  publicDialFailure,
  type ResolveAll,
} from "../../src/adapters/websocket/endpoint-policy.ts";
import type { EndpointPolicy } from "../../src/config.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

// SSRF under the adapter endpoint policy (issue 9 item 4). The unit tables use IP literals only (no DNS); host
// names go through an injected resolver. Nothing here sends traffic off the machine.

type Expect = "deny" | "allow";
/** [URL host part (brackets for IPv6), default, strict] */
type Row = [host: string, def: Expect, strict: Expect];

const DENY_BOTH = (hosts: string[]): Row[] => hosts.map((h) => [h, "deny", "deny"]);
const STRICT_ONLY = (hosts: string[]): Row[] => hosts.map((h) => [h, "allow", "deny"]);
const ALLOW_BOTH = (hosts: string[]): Row[] => hosts.map((h) => [h, "allow", "allow"]);

/** Teredo (RFC 4380): 2001:0:<server IPv4>:<flags>:<port ^ ffff>:<client IPv4 ^ ffffffff>. */
function teredo(server: string, client: string): string {
  const hex = (b: number[]) => `${((b[0] << 8) | b[1]).toString(16)}:${((b[2] << 8) | b[3]).toString(16)}`;
  const s = ipaddr.IPv4.parse(server).octets;
  const c = ipaddr.IPv4.parse(client).octets.map((x) => x ^ 0xff);
  return `[2001:0:${hex(s)}:8000:63bf:${hex(c)}]`;
}
const TEREDO_SERVER = "65.54.227.120"; // the RFC 4380 example server

const TABLE: Record<string, Row[]> = {
  // Connecting to the unspecified address reaches the local host: never a valid endpoint.
  "unspecified (0.0.0.0/8, ::) in every spelling": DENY_BOTH([
    "[::]",
    "[0::]",
    "[::0]",
    "[0:0:0:0:0:0:0:0]",
    "[0000:0000:0000:0000:0000:0000:0000:0000]",
    "[::0.0.0.0]",
    "[::ffff:0.0.0.0]",
    "[::ffff:0:0]",
    "[64:ff9b::]",
    "[64:ff9b::0.0.0.0]",
    "[2002::]",
    "[2002::1]",
    "0.0.0.0",
    "0",
    "0x0",
    "0.0",
    "0.0.0",
    "00.00.00.00",
    "0x0.0x0.0x0.0x0",
    "0.0.0.0.",
    "0.1.2.3",
  ]),
  "link-local and cloud metadata, directly and embedded in IPv6": DENY_BOTH([
    "169.254.169.254",
    "169.254.0.1",
    "0xa9fea9fe",
    "2852039166",
    "0251.0376.0251.0376",
    "169.254.43518",
    "[::ffff:169.254.169.254]",
    "[::ffff:a9fe:a9fe]",
    "[::a9fe:a9fe]",
    "[::169.254.169.254]",
    "[::ffff:0:a9fe:a9fe]",
    "[64:ff9b::a9fe:a9fe]",
    "[64:ff9b::169.254.169.254]",
    "[64:ff9b:1::a9fe:a9fe]",
    "[64:ff9b:1:a9fe:a9:fe00::]",
    "[64:ff9b:1:0:a9:fea9:fe00:0]",
    "[2002:a9fe:a9fe::]",
    "[2002:a9fe:a9fe:1::1]",
    teredo(TEREDO_SERVER, "169.254.169.254"),
    teredo("169.254.169.254", "8.8.8.8"),
    "[fe80::1]",
    "[fe80::a9fe:a9fe]",
    "[febf:ffff::1]",
    "[fd00:ec2::254]",
    "100.100.100.200",
    "[::ffff:100.100.100.200]",
    "metadata.google.internal",
    "METADATA.google.internal.",
    "metadata.goog",
  ]),
  "multicast and broadcast": DENY_BOTH([
    "224.0.0.1",
    "239.255.255.250",
    "255.255.255.255",
    "0xffffffff",
    "[ff02::1]",
    "[ff05::1:3]",
    "[ff0e::1]",
    "[::ffff:224.0.0.251]",
    "[::ffff:255.255.255.255]",
    "[64:ff9b::e000:1]",
    "[2002:e000:1::]",
  ]),
  "loopback (default allows it, self-hosted)": STRICT_ONLY([
    "127.0.0.1",
    "127.1",
    "127.255.255.254",
    "0x7f000001",
    "2130706433",
    "[::1]",
    "[0:0:0:0:0:0:0:1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::127.0.0.1]",
    "[64:ff9b::7f00:1]",
    "[2002:7f00:1::]",
  ]),
  "private: RFC 1918, CGNAT, ULA, site-local, and embedded": STRICT_ONLY([
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.255",
    "192.168.1.1",
    "100.64.0.1",
    "100.127.255.254",
    "[fc00::1]",
    "[fd12:3456:789a::1]",
    "[fec0::1]",
    "[::ffff:10.0.0.1]",
    "[::ffff:192.168.1.1]",
    "[::a00:1]",
    "[64:ff9b::c0a8:101]",
    "[2002:c0a8:101::1]",
    teredo(TEREDO_SERVER, "10.0.0.1"),
    teredo(TEREDO_SERVER, "192.168.1.1"),
  ]),
  "special-purpose ranges (documentation, benchmarking, reserved…)": STRICT_ONLY([
    "198.18.0.1",
    "198.19.255.254",
    "192.0.0.8",
    "192.0.0.170",
    "192.0.2.1",
    "198.51.100.1",
    "203.0.113.1",
    "240.0.0.1",
    "254.255.255.254",
    "192.88.99.1",
    "[2001:db8::1]",
    "[3fff::1]",
    "[2001:2::1]",
    "[100::1]",
    "[2001:1::1]",
    "[4000::1]",
    "[::ffff:198.18.0.1]",
    "[64:ff9b::c000:201]",
    "[::808:808]",
    "[64:ff9b:1::808:808]",
    teredo(TEREDO_SERVER, "192.0.2.45"),
  ]),
  "public unicast (allowed by both)": ALLOW_BOTH([
    "8.8.8.8",
    "1.1.1.1",
    "93.184.216.34",
    "[2606:4700:4700::1111]",
    "[2a00:1450:4001:80b::200e]",
    "[::ffff:8.8.8.8]",
    "[64:ff9b::808:808]",
    "[2002:808:808::1]",
    teredo(TEREDO_SERVER, "8.8.8.8"),
  ]),
};

/** No test may do DNS: host names get this resolver unless a test gives its own. */
const noDns: ResolveAll = async (host) => {
  throw new Error(`test resolver: no DNS for ${host}`);
};
const fixed =
  (...addresses: string[]): ResolveAll =>
  async () =>
    addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

async function check(endpoint: string, policy: EndpointPolicy, lookup: ResolveAll = noDns) {
  const url = parseEndpoint(endpoint);
  assert.ok(url, `${endpoint} parses`);
  return checkEndpoint(url, policy, { lookup });
}

describe("endpoint policy: address table", () => {
  for (const [group, rows] of Object.entries(TABLE)) {
    describe(group, () => {
      for (const [host, def, strict] of rows) {
        for (const [policy, expect] of [
          ["default", def],
          ["strict", strict],
        ] as const) {
          test(`${policy}: ws://${host}:9/ → ${expect}`, async () => {
            const r = await check(`ws://${host}:9/x`, policy);
            if (expect === "deny") {
              assert.equal(r.ok, false, `${host} must be denied under ${policy}`);
              assert.equal(!r.ok && r.reason, "denied", !r.ok ? r.description : "");
            } else {
              assert.ok(r.ok, `${host} must be allowed under ${policy}: ${!r.ok ? r.description : ""}`);
              const literal = new URL(`ws://${host}/`).hostname.replace(/^\[|\]$/g, "");
              assert.equal(r.address, literal, "the dial is pinned to the checked literal");
              assert.equal(r.family, literal.includes(":") ? 6 : 4);
            }
          });
        }
      }
    });
  }

  // ipaddr.js (maintained) keeps the IANA special-purpose registries; strict must deny every range it calls
  // special, except the IPv6 ranges that only carry an IPv4 address (those are judged by that address).
  describe("strict denies every ipaddr.js special range", () => {
    const carriers = new Set(["unicast", "ipv4Mapped", "rfc6145", "rfc6052", "6to4", "teredo"]);
    type Ranges = Record<string, [ipaddr.IPv4 | ipaddr.IPv6, number] | [ipaddr.IPv4 | ipaddr.IPv6, number][]>;
    for (const cls of [ipaddr.IPv4, ipaddr.IPv6]) {
      const ranges = (cls.prototype as unknown as { SpecialRanges: Ranges }).SpecialRanges;
      for (const [name, list] of Object.entries(ranges)) {
        if (carriers.has(name)) continue;
        const nets = (Array.isArray(list[0]) ? list : [list]) as [ipaddr.IPv4 | ipaddr.IPv6, number][];
        for (const [net, bits] of nets) {
          const first = net.toString();
          const host = net.kind() === "ipv6" ? `[${first}]` : first;
          test(`${name} ${first}/${bits}`, async () => {
            const r = await check(`ws://${host}:9/`, "strict");
            assert.equal(r.ok, false, `${first}/${bits} (${name}) must be denied under strict`);
          });
        }
      }
    }
  });
});

describe("endpoint policy: host names (every resolved address is checked)", () => {
  for (const policy of ["default", "strict"] as const) {
    test(`${policy}: a name resolving to :: is denied`, async () => {
      const r = await check("ws://rebind.test:9/", policy, fixed("::"));
      assert.equal(r.ok, false);
      assert.equal(!r.ok && r.reason, "denied");
    });
    test(`${policy}: a name resolving to 0.0.0.0 is denied`, async () => {
      const r = await check("ws://rebind.test:9/", policy, fixed("0.0.0.0"));
      assert.equal(!r.ok && r.reason, "denied");
    });
    test(`${policy}: a name resolving to ::ffff:169.254.169.254 is denied`, async () => {
      const r = await check("ws://rebind.test:9/", policy, fixed("::ffff:169.254.169.254"));
      assert.equal(!r.ok && r.reason, "denied");
    });
    test(`${policy}: a name resolving to a public address and :: is denied (any denied answer denies)`, async () => {
      const r = await check("ws://rebind.test:9/", policy, fixed("93.184.216.34", "::"));
      assert.equal(!r.ok && r.reason, "denied");
    });
    test(`${policy}: a name resolving to public addresses is allowed and pinned to the first`, async () => {
      const r = await check("ws://ok.test:9/", policy, fixed("2606:4700:4700::1111", "8.8.8.8"));
      assert.ok(r.ok, !r.ok ? r.description : "");
      assert.equal(r.address, "2606:4700:4700::1111");
      assert.equal(r.family, 6);
    });
    test(`${policy}: a metadata host name is denied without a lookup`, async () => {
      let asked = 0;
      const r = await check("ws://metadata.google.internal/computeMetadata/v1/", policy, async () => {
        asked++;
        return [{ address: "8.8.8.8", family: 4 }];
      });
      assert.equal(!r.ok && r.reason, "denied");
      assert.equal(asked, 0);
    });
    test(`${policy}: a name with no address is unresolvable, not allowed`, async () => {
      const r = await check("ws://nothing.test:9/", policy, fixed());
      assert.equal(!r.ok && r.reason, "unresolvable");
    });
  }

  test("default: public + private answers are allowed (private is), strict denies them", async () => {
    const lookup = fixed("93.184.216.34", "10.0.0.7");
    const d = await check("ws://mixed.test:9/", "default", lookup);
    assert.ok(d.ok);
    assert.equal(d.address, "93.184.216.34");
    const s = await check("ws://mixed.test:9/", "strict", lookup);
    assert.equal(!s.ok && s.reason, "denied");
  });

  test("strict does not echo the address an internal name resolves to", async () => {
    const r = await check("ws://db.internal.test:9/", "strict", fixed("10.11.12.13"));
    assert.equal(r.ok, false);
    assert.doesNotMatch(!r.ok ? r.description : "", /10\.11\.12\.13/);
  });
});

describe("publicDialFailure", () => {
  const details = [
    "WebSocket handshake with ws://[::1]:4321 failed: Unexpected server response: 200",
    "WebSocket handshake with ws://[::1]:4322 failed: connect ECONNREFUSED ::1:4322",
    "WebSocket handshake with wss://10.0.0.1:443 failed: self-signed certificate",
  ];

  test("default: the description is passed through unchanged", () => {
    for (const d of details) assert.equal(publicDialFailure("default", d), d);
  });

  test("strict: one generic text whatever happened (no port-scanner oracle)", () => {
    const texts = new Set(details.map((d) => publicDialFailure("strict", d)));
    assert.equal(texts.size, 1);
    const [text] = texts;
    assert.ok(text.length > 0);
    for (const leak of ["200", "ECONNREFUSED", "4321", "::1", "certificate"])
      assert.ok(!text.includes(leak), `"${text}" leaks ${leak}`);
  });
});

describe("end to end: the unspecified address does not reach a loopback service", () => {
  let strict: TestServer;
  let dflt: TestServer;
  let port: number;
  let connections = 0;
  const http = createServer((_req, res) => res.end("ok"));
  const wss = new WebSocketServer({ server: http });

  before(async () => {
    // Dual-stack wildcard listener: reachable through ::1, 127.0.0.1, :: and 0.0.0.0 alike.
    http.on("connection", () => connections++);
    await new Promise<void>((r) => http.listen({ host: "::", port: 0, ipv6Only: false }, () => r()));
    port = (http.address() as AddressInfo).port;
    [strict, dflt] = await Promise.all([
      startTestServer(["--endpoint-policy", "strict", "--ws-connect-timeout-ms", "1000"]),
      startTestServer(["--ws-connect-timeout-ms", "1000"]),
    ]);
  });
  after(async () => {
    await strict?.close();
    await dflt?.close();
    wss.close();
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  });

  for (const [label, server] of [
    ["strict", () => strict],
    ["default", () => dflt],
  ] as const) {
    test(`${label}: ws://[::], [0::], 0.0.0.0 and [::ffff:0.0.0.0] → websocket_endpoint_not_allowed, nothing connects`, async () => {
      const hosts = ["[::]", "[0::]", "0.0.0.0", "[::ffff:0.0.0.0]"];
      const res = await server().api.raw<{ tracks: { errorCode?: string; adapterId?: string }[] }>(
        "POST",
        "adapters/websocket/new",
        {
          tracks: hosts.map((h, i) => ({
            location: "local",
            trackName: `t${i}`,
            endpoint: `ws://${h}:${port}/`,
            inputCodec: "pcm",
          })),
        },
      );
      assert.deepEqual(
        res.body.tracks.map((t) => t.errorCode),
        Array(hosts.length).fill("websocket_endpoint_not_allowed"),
        JSON.stringify(res.body),
      );
      assert.equal(res.status, 503);
      assert.equal(connections, 0, "the loopback service saw no connection");
    });
  }
});
