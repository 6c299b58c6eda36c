import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { RtpHeader as Header, type RtpHeader, RtpPacket } from "werift";
import { parseVp8Descriptor } from "../../src/media/vp8-munger.ts";
import { ForwardingSendStream } from "../../src/rtc/forwarding-stream.ts";
import type { SendStreamSpec } from "../../src/rtc/peer-transport.ts";
import { Track } from "../../src/sfu/track.ts";

// The per-subscriber forwarding logic on a fake clock: simulcast layer choice and switching at keyframes,
// one continuous output stream (sequence numbers, timestamps, VP8 picture ids), padding, NACKs.

const SPEC: SendStreamSpec = {
  mid: "3",
  kind: "video",
  ssrc: 4242,
  cname: "c",
  payloadType: 98,
  codecName: "vp8",
  clockRate: 90000,
  extensions: new Map([["urn:ietf:params:rtp-hdrext:sdes:mid", 4]]),
};

/** A VP8 payload: descriptor with a 15-bit PictureID, then the payload header (P bit 0 = keyframe). */
function vp8(pictureId: number, key: boolean): Buffer {
  return Buffer.from([
    0x90,
    0x80,
    0x80 | ((pictureId >> 8) & 0x7f),
    pictureId & 0xff,
    key ? 0x00 : 0x01,
    0xaa,
  ]);
}

interface Sent {
  header: RtpHeader;
  payload: Buffer;
}

function setup(layers = ["q", "h", "f"], honorRequests = false) {
  let now = 1000;
  const sent: Sent[] = [];
  const keyframeRequests: number[] = [];
  /** Layers whose encoder was asked for a keyframe: like a real publisher, it answers on its next frame. */
  const asked = new Set<number>();
  const track = new Track({
    sessionId: "pub",
    name: "cam",
    kind: "video",
    codec: { mimeType: "video/VP8", clockRate: 90000 },
    layers,
    publisher: {
      requestKeyframe: (layer) => {
        keyframeRequests.push(layer);
        if (honorRequests) asked.add(layer);
      },
    },
  });
  const stream = new ForwardingSendStream(
    SPEC,
    track,
    {
      send: (header, payload) => {
        sent.push({ header, payload });
        return true;
      },
      now: () => now,
    },
    {},
    () => {},
  );
  track.subscribe(stream);
  // Per layer: its own SSRC-like sequence, timestamp and picture-id spaces, as a real encoder has.
  const state = layers.map((_, i) => ({ seq: 1000 * (i + 1), ts: 10_000 * (i + 1), pid: 100 * (i + 1) }));
  /** One frame (one packet) on each listed layer, then 33 ms pass. */
  const frame = (opts: { layers?: number[]; key?: number[]; padding?: number[] } = {}) => {
    for (const l of opts.layers ?? layers.map((_, i) => i)) {
      const s = state[l];
      const padding = opts.padding?.includes(l) ?? false;
      const key = (opts.key?.includes(l) ?? false) || asked.delete(l);
      const payload = padding ? Buffer.alloc(0) : vp8(s.pid, key);
      const header = new Header({
        payloadType: 96,
        sequenceNumber: s.seq,
        timestamp: s.ts,
        ssrc: 77 + l,
        marker: true,
      });
      track.write(new RtpPacket(header, payload), l);
      s.seq = (s.seq + 1) & 0xffff;
      if (!padding) {
        s.ts = (s.ts + 3000) >>> 0;
        s.pid = (s.pid + 1) & 0x7fff;
      }
    }
    now += 33;
  };
  return { track, stream, sent, keyframeRequests, frame, advance: (ms: number) => (now += ms) };
}

function assertContinuous(sent: Sent[]): void {
  for (let i = 1; i < sent.length; i++) {
    const a = sent[i - 1].header;
    const b = sent[i].header;
    assert.equal(b.sequenceNumber, (a.sequenceNumber + 1) & 0xffff, `sequence continues at packet ${i}`);
    assert.ok(((b.timestamp - a.timestamp) | 0) > 0, `timestamp advances at packet ${i}`);
    const pa = parseVp8Descriptor(sent[i - 1].payload)!.pictureId!;
    const pb = parseVp8Descriptor(sent[i].payload)!.pictureId!;
    assert.equal(pb, (pa + 1) & 0x7fff, `picture id continues at packet ${i}`);
  }
}

describe("ForwardingSendStream", () => {
  it("no preference: starts at a keyframe and moves up to the highest layer (f), one continuous stream", () => {
    const t = setup();
    t.frame({ key: [0, 1, 2] });
    for (let i = 0; i < 10; i++) t.frame();
    t.frame({ key: [2] });
    for (let i = 0; i < 5; i++) t.frame();
    assert.ok(t.sent.length > 5);
    assert.equal(t.stream.stats().currentRid, "f");
    assert.ok(t.keyframeRequests.includes(2), "asked the publisher for a keyframe of f");
    for (const s of t.sent) {
      assert.equal(s.header.ssrc, 4242);
      assert.equal(s.header.payloadType, 98);
      assert.deepEqual(
        s.header.extensions.map((e) => [e.id, e.payload.toString()]),
        [[4, "3"]],
      );
    }
    assertContinuous(t.sent);
  });

  it("preferredRid down then up: switches only at a keyframe of the new layer, asking for one", () => {
    const t = setup();
    t.stream.setLayerPreference({ preferredRid: "f", priorityOrdering: "none", ridNotAvailable: "none" });
    t.frame({ key: [0, 1, 2] });
    for (let i = 0; i < 3; i++) t.frame();
    assert.equal(t.stream.stats().currentRid, "f");
    t.keyframeRequests.length = 0;
    t.stream.setLayerPreference({ preferredRid: "q", priorityOrdering: "none", ridNotAvailable: "none" });
    t.frame();
    assert.deepEqual(t.keyframeRequests, [0], "a keyframe of q was requested");
    for (let i = 0; i < 3; i++) t.frame();
    assert.equal(t.stream.stats().currentRid, "f", "f keeps flowing until q's keyframe");
    const before = t.sent.length;
    t.frame({ key: [0] });
    assert.equal(t.stream.stats().currentRid, "q");
    assert.equal(t.sent.length, before + 1, "exactly q's keyframe went out in that frame");
    for (let i = 0; i < 3; i++) t.frame();
    t.stream.setLayerPreference({ preferredRid: "h", priorityOrdering: "none", ridNotAvailable: "none" });
    t.frame();
    t.frame({ key: [1] });
    t.frame();
    assert.equal(t.stream.stats().currentRid, "h");
    assert.equal(t.stream.stats().layerSwitches, 2);
    assertContinuous(t.sent);
  });

  it("ridNotAvailable: none forwards nothing while the preferred layer is not sent; asciibetical falls back", () => {
    const none = setup();
    none.stream.setLayerPreference({ preferredRid: "h", priorityOrdering: "none", ridNotAvailable: "none" });
    for (let i = 0; i < 40; i++) none.frame({ layers: [0, 2], key: i === 0 ? [0, 2] : [] });
    assert.equal(none.sent.length, 0);
    const fallback = setup(["q", "h", "f"], true);
    fallback.stream.setLayerPreference({
      preferredRid: "h",
      priorityOrdering: "none",
      ridNotAvailable: "asciibetical",
    });
    fallback.frame({ key: [0, 1, 2] });
    for (let i = 0; i < 3; i++) fallback.frame();
    assert.equal(fallback.stream.stats().currentRid, "h");
    // h stops (the publisher dropped it for bandwidth): after a second, the next in a–z order (q) takes over.
    for (let i = 0; i < 40; i++) fallback.frame({ layers: [0, 2] });
    assert.equal(fallback.stream.stats().currentRid, "q");
    assertContinuous(fallback.sent);
  });

  it("padding-only packets are dropped without leaving a sequence hole", () => {
    const t = setup(["only"]);
    for (let i = 0; i < 3; i++) t.frame();
    t.frame({ padding: [0] });
    t.frame({ padding: [0] });
    for (let i = 0; i < 3; i++) t.frame();
    assert.equal(t.sent.length, 6);
    for (let i = 1; i < t.sent.length; i++)
      assert.equal(t.sent[i].header.sequenceNumber, (t.sent[i - 1].header.sequenceNumber + 1) & 0xffff);
  });

  it("a NACK resends exactly what was sent under that number; unknown numbers are ignored", () => {
    const t = setup(["only"]);
    for (let i = 0; i < 5; i++) t.frame();
    const wanted = t.sent[2];
    const n = t.sent.length;
    t.stream.onNack([wanted.header.sequenceNumber, (wanted.header.sequenceNumber + 500) & 0xffff]);
    assert.equal(t.sent.length, n + 1);
    const again = t.sent[n];
    for (const k of ["sequenceNumber", "timestamp", "ssrc", "payloadType", "marker"] as const)
      assert.equal(again.header[k], wanted.header[k], k);
    assert.deepEqual(again.header.extensions, wanted.header.extensions);
    assert.deepEqual(again.payload, wanted.payload);
    assert.equal(t.stream.stats().retransmitted, 1);
    // The same number again right away is refused (NACK storm protection).
    t.stream.onNack([wanted.header.sequenceNumber]);
    assert.equal(t.sent.length, n + 1);
  });

  it("never modifies the shared packet", () => {
    const t = setup();
    const payload = vp8(5, true);
    const header = new Header({ payloadType: 96, sequenceNumber: 1, timestamp: 2, ssrc: 3 });
    const packet = new RtpPacket(header, payload);
    const copy = Buffer.from(payload);
    t.stream.onPacket(packet, t.track, 2);
    assert.deepEqual(packet.payload, copy);
    assert.equal(packet.header.sequenceNumber, 1);
    assert.equal(packet.header.ssrc, 3);
  });
});
