import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, test } from "node:test";
import { RtcpRrPacket, RtpHeader, SrtcpSession, SrtpSession } from "werift";
import { loadNative } from "../../src/native/addon.ts";

// The native SRTP contexts against an implementation nobody here wrote (werift's), both ways, both profiles
// Patchbay negotiates; the RFC vectors themselves run in native/test/srtp_test.cc under ASan + UBSan.
const native = loadNative();

const PROFILES = [
  { id: 1 as const, name: "AES_CM_128_HMAC_SHA1_80", salt: 14 },
  { id: 7 as const, name: "AEAD_AES_128_GCM", salt: 12 },
];

function rtpHeader(seq: number, ssrc: number): RtpHeader {
  return new RtpHeader({ payloadType: 111, sequenceNumber: seq, timestamp: seq * 960, ssrc, marker: false });
}

for (const profile of PROFILES) {
  describe(`native SRTP ${profile.name} interoperates with werift`, () => {
    const key = randomBytes(16);
    const salt = randomBytes(profile.salt);
    const keys = {
      localMasterKey: key,
      localMasterSalt: salt,
      remoteMasterKey: key,
      remoteMasterSalt: salt,
    };

    test("werift → native: 70 000 packets across a sequence wrap decrypt to the same bytes", () => {
      const werift = new SrtpSession({ keys, profile: profile.id });
      const rx = new native.SrtpContext(profile.id, key, salt);
      for (let i = 0; i < 70_000; i++) {
        const seq = (60_000 + i) & 0xffff;
        const payload = randomBytes(20 + (i % 100));
        const header = rtpHeader(seq, 0xdecafbad);
        const plain = Buffer.concat([header.serialize(header.serializeSize), payload]);
        const wire = werift.encrypt(payload, header);
        const out = rx.unprotectRtp(wire);
        assert.ok(out, `packet ${i} (seq ${seq}) accepted`);
        if (i % 997 === 0 || (i > 5530 && i < 5540)) assert.deepEqual(out, plain, `packet ${i}`);
      }
      assert.deepEqual(rx.stats(), { authFailures: 0, replays: 0, malformed: 0 });
    });

    test("native → werift: RTP and RTCP decrypt to the same bytes", () => {
      const werift = new SrtpSession({ keys, profile: profile.id });
      const weriftRtcp = new SrtcpSession({ keys, profile: profile.id });
      const tx = new native.SrtpContext(profile.id, key, salt);
      for (let i = 0; i < 2000; i++) {
        const header = rtpHeader((65_000 + i) & 0xffff, 0x1234);
        const payload = randomBytes(1 + (i % 1200));
        const plain = Buffer.concat([header.serialize(header.serializeSize), payload]);
        const wire = tx.protectRtp(plain);
        assert.ok(wire);
        assert.deepEqual(werift.decrypt(wire), plain);
      }
      const rr = new RtcpRrPacket({ ssrc: 0x1234, reports: [] }).serialize();
      for (let i = 0; i < 10; i++) {
        const wire = tx.protectRtcp(rr);
        assert.ok(wire);
        assert.deepEqual(weriftRtcp.decrypt(wire), rr);
      }
    });

    test("tampered, replayed and truncated packets are refused and counted, never thrown", () => {
      const tx = new native.SrtpContext(profile.id, key, salt);
      const rx = new native.SrtpContext(profile.id, key, salt);
      const header = rtpHeader(7, 99);
      const wire = tx.protectRtp(Buffer.concat([header.serialize(header.serializeSize), randomBytes(50)]));
      assert.ok(wire);
      const bad = Buffer.from(wire);
      bad[20] ^= 1;
      assert.equal(rx.unprotectRtp(bad), null);
      assert.ok(rx.unprotectRtp(wire));
      assert.equal(rx.unprotectRtp(wire), null);
      assert.equal(rx.unprotectRtp(wire.subarray(0, 11)), null);
      assert.equal(rx.unprotectRtcp(Buffer.alloc(3)), null);
      assert.deepEqual(rx.stats(), { authFailures: 1, replays: 1, malformed: 2 });
      assert.throws(() => new native.SrtpContext(profile.id, key.subarray(1), salt), /key or salt length/);
    });
  });
}
