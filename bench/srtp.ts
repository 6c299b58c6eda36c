// SRTP protect/unprotect cost per packet: werift's implementation (the media plane today) against the native
// contexts (issue 11), same packets, same run. Prints a table and writes bench/results/srtp-<stamp>.json.
//   npm run bench:srtp [-- --packets 200000 --size 160]
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { RtpHeader, SrtpSession } from "werift";
import { loadNative } from "../src/native/addon.ts";
import { finishRun, openRun } from "./lib/adapter-bench.ts";

const { values } = parseArgs({
  options: { packets: { type: "string", default: "200000" }, size: { type: "string", default: "160" } },
});
const N = Math.max(1000, Number(values.packets));
const SIZE = Math.max(1, Number(values.size));
const native = loadNative();
const run = openRun(
  "srtp",
  undefined,
  false,
  `SRTP cost per packet: werift vs native (${N} packets of ${SIZE} payload bytes)`,
);

function cpuUs(fn: () => void): number {
  const start = process.cpuUsage();
  fn();
  const used = process.cpuUsage(start);
  return used.user + used.system;
}

interface Row {
  profile: string;
  implementation: string;
  operation: string;
  usPerPacket: number;
}
const rows: Row[] = [];
for (const profile of [
  { id: 1 as const, name: "AES_CM_128_HMAC_SHA1_80", salt: 14 },
  { id: 7 as const, name: "AEAD_AES_128_GCM", salt: 12 },
]) {
  const key = randomBytes(16);
  const salt = randomBytes(profile.salt);
  const keys = { localMasterKey: key, localMasterSalt: salt, remoteMasterKey: key, remoteMasterSalt: salt };
  const payload = randomBytes(SIZE);
  const headers = Array.from(
    { length: 1024 },
    (_, i) => new RtpHeader({ payloadType: 111, sequenceNumber: i, timestamp: i * 960, ssrc: 0x1234 }),
  );
  const plain = headers.map((h) => Buffer.concat([h.serialize(h.serializeSize), payload]));
  // Warm up both, then measure each over the same N packets (sequence numbers keep increasing).
  const werift = new SrtpSession({ keys, profile: profile.id });
  const werift2 = new SrtpSession({ keys, profile: profile.id });
  const tx = new native.SrtpContext(profile.id, key, salt);
  const rx = new native.SrtpContext(profile.id, key, salt);
  const wire: Buffer[] = [];
  const weriftEncrypt = cpuUs(() => {
    for (let i = 0; i < N; i++) {
      const h = headers[i & 1023];
      h.sequenceNumber = i & 0xffff;
      const w = werift.encrypt(payload, h);
      if (i < 65_000) wire.push(w);
    }
  });
  const weriftDecrypt = cpuUs(() => {
    for (let i = 0; i < wire.length; i++) werift2.decrypt(wire[i]);
  });
  const nativeProtect = cpuUs(() => {
    for (let i = 0; i < N; i++) {
      const p = plain[i & 1023];
      p.writeUInt16BE(i & 0xffff, 2);
      tx.protectRtp(p);
    }
  });
  const nativeUnprotect = cpuUs(() => {
    for (let i = 0; i < wire.length; i++) rx.unprotectRtp(wire[i]);
  });
  const tx2 = new native.SrtpContext(profile.id, key, salt);
  const batched = cpuUs(() => {
    tx2.protectRtpBatch(plain[0], N, 0);
  });
  rows.push(
    {
      profile: profile.name,
      implementation: "werift",
      operation: "encrypt (per call)",
      usPerPacket: weriftEncrypt / N,
    },
    {
      profile: profile.name,
      implementation: "werift",
      operation: "decrypt (per call)",
      usPerPacket: weriftDecrypt / wire.length,
    },
    {
      profile: profile.name,
      implementation: "native",
      operation: "protect (one JS call per packet)",
      usPerPacket: nativeProtect / N,
    },
    {
      profile: profile.name,
      implementation: "native",
      operation: "unprotect (one JS call per packet)",
      usPerPacket: nativeUnprotect / wire.length,
    },
    {
      profile: profile.name,
      implementation: "native",
      operation: "protect (batched, no crossing)",
      usPerPacket: batched / N,
    },
  );
}

run.out(`${"profile".padEnd(26)}${"implementation".padEnd(16)}${"operation".padEnd(38)}µs/packet\n`);
for (const r of rows)
  run.out(
    `${r.profile.padEnd(26)}${r.implementation.padEnd(16)}${r.operation.padEnd(38)}${r.usPerPacket.toFixed(2)}\n`,
  );
await finishRun(run, { packets: N, payloadBytes: SIZE, rows });
