import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { WebSocket, WebSocketServer } from "ws";
import {
  bytesToPcm,
  chunkPcm,
  decodePacket,
  encodePacket,
  maxChunkBytes,
  type Packet,
  pcmToBytes,
  readFrames,
  sendBurst,
  sendPaced,
} from "../../src/client/endpoint.ts";
import { speechLike, toBytes } from "../helpers/signals.ts";

/** A connected client/server socket pair on loopback. */
async function socketPair(): Promise<{ client: WebSocket; server: WebSocket; close(): Promise<void> }> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const accepted = new Promise<WebSocket>((r) => wss.once("connection", r));
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}/`);
  await new Promise<void>((resolve, reject) => {
    client.once("open", () => resolve());
    client.once("error", reject);
  });
  const server = await accepted;
  return {
    client,
    server,
    close: () =>
      new Promise((r) => {
        client.terminate();
        server.terminate();
        wss.close(() => r());
      }),
  };
}

/** Collects decoded Packets (payload copied) until `n` arrived. */
function collect(ws: WebSocket): { packets: Packet[]; times: number[]; until(n: number): Promise<void> } {
  const packets: Packet[] = [];
  const times: number[] = [];
  let waiter: { n: number; resolve: () => void } | undefined;
  ws.on("message", (data) => {
    const r = decodePacket(data as Buffer);
    assert.ok(r.ok);
    packets.push({ ...r.packet, payload: r.packet.payload.slice() });
    times.push(performance.now());
    if (waiter && packets.length >= waiter.n) waiter.resolve();
  });
  return {
    packets,
    times,
    until: (n) =>
      packets.length >= n ? Promise.resolve() : new Promise((resolve) => (waiter = { n, resolve })),
  };
}

function concat(chunks: Uint8Array[]): Uint8Array {
  return Buffer.concat(chunks);
}

describe("client/endpoint: chunking", () => {
  test("chunkPcm keeps every serialized Packet within the limit, worst-case header included", () => {
    assert.equal(maxChunkBytes(), 32_752);
    const pcm = speechLike(1000, { seed: 1 }); // 192 000 bytes
    const bytes = toBytes(pcm);
    for (const limit of [32_768, 16_384, 1000, 133, 20]) {
      const chunks = chunkPcm(pcm, limit);
      assert.deepEqual(concat(chunks), Buffer.from(bytes), `limit ${limit}: bytes preserved in order`);
      for (const c of chunks.slice(0, -1)) assert.equal(c.length % 4, 0, "whole sample frames");
      for (const c of chunks) {
        const wire = encodePacket({ sequenceNumber: 0xffff_ffff, timestamp: 0xffff_ffff, payload: c });
        assert.ok(wire.length <= limit, `limit ${limit}: message ${wire.length} bytes`);
      }
    }
    assert.equal(chunkPcm(pcm).length, Math.ceil(192_000 / 32_752));
    assert.throws(() => chunkPcm(pcm, 10), RangeError);
  });

  test("pcmToBytes / bytesToPcm are little-endian and bytesToPcm copies", () => {
    const pcm = new Int16Array([1, -2, 0x1234]);
    assert.deepEqual([...pcmToBytes(pcm)], [1, 0, 0xfe, 0xff, 0x34, 0x12]);
    const bytes = Uint8Array.from([0, 1, 0xff, 0x7f, 9]); // odd length: trailing byte ignored
    const back = bytesToPcm(bytes.subarray(1)); // unaligned view
    assert.deepEqual([...back], [-255, 0x097f]);
    bytes[1] = 0;
    assert.deepEqual([...back], [-255, 0x097f], "a copy");
  });
});

describe("client/endpoint: sending and reading over a real WebSocket", () => {
  let pair: Awaited<ReturnType<typeof socketPair>>;
  before(async () => {
    pair = await socketPair();
  });
  after(async () => {
    await pair.close();
  });

  test("sendBurst: 16 KiB payloads numbered from 0, timestamps in 48 kHz frames, then one empty packet", async () => {
    const pcm = speechLike(1000, { seed: 2 });
    const rx = collect(pair.server);
    const res = await sendBurst(pair.client, pcm);
    const expected = Math.ceil(192_000 / 16_384) + 1;
    assert.equal(res.messages, expected);
    assert.equal(res.bytes, 192_000);
    await rx.until(expected);
    const { packets } = rx;
    assert.deepEqual(
      packets.map((p) => p.sequenceNumber),
      packets.map((_, i) => i),
    );
    assert.deepEqual(
      packets.map((p) => p.timestamp),
      packets.map((_, i) => Math.min(i * 4096, 48_000)),
    );
    assert.equal(packets.at(-1)!.payload.length, 0, "ends with an empty packet");
    assert.deepEqual(concat(packets.map((p) => p.payload)), Buffer.from(toBytes(pcm)));
    assert.equal(res.nextSequenceNumber, expected);
    assert.equal(res.nextTimestamp, 48_000);
    pair.server.removeAllListeners("message");
  });

  test("sendBurst continues numbering and honours end: false and a small message limit", async () => {
    const rx = collect(pair.server);
    const res = await sendBurst(pair.client, new Int16Array(2000), {
      end: false,
      sequenceNumber: 0xffff_fffe,
      maxMessageBytes: 1000,
      chunkBytes: 16_384,
    });
    await rx.until(res.messages);
    assert.deepEqual(
      rx.packets.map((p) => p.sequenceNumber),
      [0xffff_fffe, 0xffff_ffff, 0, 1, 2],
    );
    for (const p of rx.packets) assert.ok(p.payload.length > 0 && p.payload.length <= maxChunkBytes(1000));
    pair.server.removeAllListeners("message");
  });

  test("sendPaced: 20 ms frames on an absolute clock, then an empty packet", async () => {
    const frames = 15;
    const pcm = speechLike(frames * 20, { seed: 3 });
    const rx = collect(pair.server);
    const t0 = performance.now();
    const res = await sendPaced(pair.client, pcm);
    await rx.until(frames + 1);
    assert.equal(res.messages, frames + 1);
    const payloads = rx.packets.map((p) => p.payload.length);
    assert.deepEqual(payloads, [...new Array(frames).fill(3840), 0]);
    const elapsed = rx.times[frames - 1] - t0;
    assert.ok(elapsed >= (frames - 1) * 20 - 2, `not faster than real time (${elapsed.toFixed(1)} ms)`);
    assert.ok(elapsed < (frames - 1) * 20 + 150, `no accumulated drift (${elapsed.toFixed(1)} ms)`);
    for (let i = 1; i < frames; i++) {
      const due = t0 + i * 20;
      assert.ok(rx.times[i] >= due - 2, `frame ${i} not early`);
    }
    pair.server.removeAllListeners("message");
  });

  test("sendPaced: abort stops it; a closed socket rejects", async () => {
    const ac = new AbortController();
    const p = sendPaced(pair.client, new Int16Array(1920 * 50), { signal: ac.signal });
    setTimeout(() => ac.abort(new Error("stop")), 30);
    await assert.rejects(p, /stop/);
    assert.throws(() => sendPaced(pair.client, new Int16Array(4), { frameMs: 0.01 }), RangeError);
    assert.throws(() => sendPaced(pair.client, new Int16Array(4), { frameMs: 500 }), RangeError);
  });

  test("readFrames: Int16Array per packet, odd bytes carried, bad input reported and never thrown", async () => {
    const got: { pcm: Int16Array; seq: number }[] = [];
    const errors: string[] = [];
    const reader = readFrames(
      pair.client,
      (pcm, packet) => {
        got.push({ pcm, seq: packet.sequenceNumber });
        if (packet.sequenceNumber === 4) throw new Error("handler bug");
      },
      { onError: (e) => errors.push(e.message) },
    );
    const s = pair.server;
    s.send(encodePacket({ sequenceNumber: 1, timestamp: 0, payload: Uint8Array.from([1, 0, 2]) }));
    s.send(encodePacket({ sequenceNumber: 2, timestamp: 0, payload: Uint8Array.from([0, 0xff, 0xff]) }));
    s.send("hello"); // text
    s.send(Uint8Array.from([0x0a, 0x05, 1])); // truncated payload field
    s.send(new Uint8Array(0)); // empty message = empty packet
    s.send(encodePacket({ sequenceNumber: 4, timestamp: 0, payload: Uint8Array.from([3, 0]) }));
    await new Promise<void>((resolve) => {
      const check = () => (got.length >= 4 ? resolve() : setTimeout(check, 5));
      check();
    });
    assert.deepEqual(
      got.map((g) => [g.seq, [...g.pcm]]),
      [
        [1, [1]],
        [2, [2, -1]],
        [0, []],
        [4, [3]],
      ],
    );
    assert.equal(reader.stats.packets, 4);
    assert.equal(reader.stats.malformed, 1);
    assert.equal(reader.stats.textMessages, 1);
    assert.equal(errors.length, 3, errors.join("; "));
    assert.match(errors[2], /handler bug/);
    reader.stop();
    assert.equal(pair.client.listenerCount("message"), 0);
  });
});
