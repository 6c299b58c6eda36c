import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { parse } from "sdp-transform";
import type { CodecFormat } from "../../src/rtc/negotiation/codecs.ts";
import { EXT } from "../../src/rtc/negotiation/header-extensions.ts";
import { parseRemoteDescription, SdpError } from "../../src/rtc/negotiation/remote-description.ts";
import { type LocalTransportParameters, writeDescription } from "../../src/rtc/negotiation/sdp-writer.ts";
import {
  AnswerDraft,
  applyAnswer,
  emptyState,
  OfferDraft,
  type SendSpec,
  type SessionDescriptionState,
} from "../../src/rtc/negotiation/session-description.ts";

// The negotiation model against real SDPs (test/fixtures/sdp/README.md), including the three that broke
// real calls: a pull m-line whose extension ids collided with the publisher's, an answer that kept a
// stopped m-line in BUNDLE, and a simulcast answer without the RID extension.

const fixture = (name: string) =>
  readFileSync(new URL(`../fixtures/sdp/${name}.sdp`, import.meta.url), "utf8");
const offerOf = (name: string) => parseRemoteDescription("offer", fixture(name));

const LOCAL: LocalTransportParameters = {
  iceLite: true,
  iceUfrag: "srvU",
  icePwd: "server-password-0123456789",
  fingerprint: { algorithm: "sha-256", value: "AA:BB:CC" },
  candidates: [{ foundation: "1", priority: 2130706431, ip: "127.0.0.1", port: 40000 }],
};

const OPUS: CodecFormat = { name: "opus", clockRate: 48000, channels: 2, fmtp: "minptime=10;useinbandfec=1" };
const VP8: CodecFormat = { name: "vp8", clockRate: 90000 };
const H264: CodecFormat = {
  name: "h264",
  clockRate: 90000,
  fmtp: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
};

function spec(format: CodecFormat, trackId = "remote-track", preferredPayloadType?: number): SendSpec {
  return {
    ssrc: 1111,
    cname: "cname",
    streamId: "0123456789abcdef0123456789abcdef",
    trackId,
    format,
    preferredPayloadType,
  };
}

function answer(state: SessionDescriptionState, offerName: string, bind?: (d: AnswerDraft) => void) {
  const draft = new AnswerDraft(state, offerOf(offerName));
  bind?.(draft);
  const next = draft.finish();
  return { state: next, sdp: parse(writeDescription(next, "answer", LOCAL)) };
}

/** Every extension id means one URI across the whole description (Chromium's BUNDLE rule). */
function assertOneMeaningPerId(sdp: ReturnType<typeof parse>): void {
  const seen = new Map<number, string>();
  for (const m of sdp.media)
    for (const e of m.ext ?? []) {
      const prev = seen.get(e.value);
      assert.ok(prev === undefined || prev === e.uri, `extension id ${e.value} means ${prev} and ${e.uri}`);
      seen.set(e.value, e.uri);
    }
  const pts = new Map<number, string>();
  for (const m of sdp.media) {
    if (m.port === 0) continue;
    for (const r of m.rtp) {
      const key = `${r.codec}/${r.rate}`.toLowerCase();
      const prev = pts.get(r.payload);
      assert.ok(prev === undefined || prev === key, `payload type ${r.payload} means ${prev} and ${key}`);
      pts.set(r.payload, key);
    }
  }
}

describe("parseRemoteDescription", () => {
  it("reads mids, directions, codecs, extensions, SSRCs (without RTX companions), ICE and DTLS", () => {
    const o = offerOf("chromium-av-send.offer");
    assert.deepEqual(
      o.sections.map((s) => [s.mid, s.kind, s.direction, s.rejected]),
      [
        ["0", "audio", "sendonly", false],
        ["1", "video", "sendonly", false],
      ],
    );
    assert.deepEqual(o.bundle, ["0", "1"]);
    assert.equal(o.sections[0].codecs[0].name, "opus");
    assert.equal(o.sections[0].codecs[0].payloadType, 111);
    assert.equal(o.sections[1].ssrcs.length, 1, "the RTX SSRC of the FID group is not a media stream");
    assert.ok(o.sections[1].msid?.trackId);
    assert.equal(o.setup, "actpass");
    assert.equal(o.fingerprints[0].algorithm, "sha-256");
    assert.ok(o.iceUfrag.length > 0 && o.icePwd.length > 0);
  });

  it("reads simulcast rids in the peer's order", () => {
    const o = offerOf("chromium-simulcast-send.offer");
    assert.deepEqual(
      o.sections[0].sendRids.map((r) => r.id),
      ["q", "h", "f"],
    );
  });

  it("reads a stopped m-line as rejected and out of BUNDLE", () => {
    const o = offerOf("chromium-av-audio-stopped.offer");
    assert.equal(o.sections[0].rejected, true);
    assert.deepEqual(o.bundle, ["1"]);
  });

  it("keeps all-digit ICE credentials as text (werift picks ufrags like 6024)", () => {
    const sdp = fixture("chromium-audio-send.offer")
      .replace(/a=ice-ufrag:[^\r]*/g, "a=ice-ufrag:6024")
      .replace(/a=ice-pwd:[^\r]*/g, "a=ice-pwd:1234567890123456789012");
    const o = parseRemoteDescription("offer", sdp);
    assert.equal(o.iceUfrag, "6024");
    assert.equal(o.icePwd, "1234567890123456789012");
  });

  it("rejects SDP a BUNDLE transport cannot serve, saying why", () => {
    const noMid = fixture("chromium-audio-send.offer").replace(/a=mid:0\r\n/, "");
    assert.throws(() => parseRemoteDescription("offer", noMid), /no a=mid/);
    const noFp = fixture("chromium-audio-send.offer").replace(/a=fingerprint:[^\r]*\r\n/g, "");
    assert.throws(() => parseRemoteDescription("offer", noFp), /fingerprint/);
    const unbundled = fixture("chromium-av-send.offer").replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0");
    assert.throws(() => parseRemoteDescription("offer", unbundled), /not in a=group:BUNDLE/);
    assert.throws(() => parseRemoteDescription("offer", "v=0\r\n"), SdpError);
  });
});

describe("answering offers", () => {
  it("Chromium audio publish: recvonly, Opus 111, the offered extension ids, passive, ice-lite, candidates", () => {
    const { state, sdp } = answer(emptyState(), "chromium-audio-send.offer");
    assert.equal(sdp.icelite, "ice-lite");
    assert.equal(sdp.media.length, 1);
    const m = sdp.media[0];
    assert.equal(m.direction, "recvonly");
    assert.deepEqual(
      m.rtp.map((r) => [r.payload, r.codec]),
      [[111, "opus"]],
    );
    assert.deepEqual(
      (m.ext ?? []).map((e) => [e.value, e.uri]),
      [
        [1, EXT.audioLevel],
        [4, EXT.mid],
      ],
    );
    assert.equal(m.setup, "passive");
    assert.equal(m.candidates?.[0].ip, "127.0.0.1");
    assert.equal(m.endOfCandidates, "end-of-candidates");
    assert.equal(String(sdp.groups?.[0].mids), "0");
    assert.equal(state.dtlsRole, "server");
    assert.equal(state.sections[0].receive, true);
  });

  it("video publish: one codec (the peer's first forwardable), no RTX/RED/FEC, feedback we act on", () => {
    const { sdp } = answer(emptyState(), "chromium-av-send.offer");
    const v = sdp.media[1];
    assert.deepEqual(
      v.rtp.map((r) => r.codec),
      ["VP8"],
    );
    assert.deepEqual((v.rtcpFb ?? []).map((f) => (f.subtype ? `${f.type} ${f.subtype}` : f.type)).sort(), [
      "ccm fir",
      "goog-remb",
      "nack",
      "nack pli",
    ]);
    assert.ok(!(v.ext ?? []).some((e) => e.uri.includes("transport-wide")));
    assertOneMeaningPerId(sdp);
  });

  it("failing SDP 2: a stopped m-line is answered port 0 and left out of BUNDLE", () => {
    const first = answer(emptyState(), "chromium-av-send.offer");
    const { state, sdp } = answer(first.state, "chromium-av-audio-stopped.offer");
    assert.equal(sdp.media[0].port, 0);
    assert.equal(String(sdp.media[0].mid), "0");
    assert.equal(sdp.media[1].port, 9);
    assert.equal(String(sdp.groups?.[0].mids), "1");
    assert.equal(state.sections[0].rejected, true);
  });

  it("failing SDP 3: a simulcast publish is answered with the RID extension and a=simulcast:recv", () => {
    const { state, sdp } = answer(emptyState(), "chromium-simulcast-send.offer");
    const m = sdp.media[0];
    assert.ok(
      (m.ext ?? []).some((e) => e.uri === EXT.rid && e.value === 10),
      "rtp-stream-id with the offered id",
    );
    assert.deepEqual(
      (m.rids ?? []).map((r) => [r.id, r.direction]),
      [
        ["q", "recv"],
        ["h", "recv"],
        ["f", "recv"],
      ],
    );
    assert.equal(m.simulcast?.dir1, "recv");
    assert.equal(m.simulcast?.list1, "q;h;f");
    assert.deepEqual(
      state.sections[0].recvRids.map((r) => r.id),
      ["q", "h", "f"],
    );
  });

  it("Firefox: its payload types (109, 120) and direction-tagged extmaps", () => {
    const { sdp } = answer(emptyState(), "firefox-av-sendrecv.offer");
    assert.equal(sdp.media[0].rtp[0].payload, 109);
    assert.equal(sdp.media[1].rtp[0].payload, 120);
    assert.equal(sdp.media[0].direction, "recvonly", "nothing to send yet: we only receive");
    assert.deepEqual(
      (sdp.media[1].ext ?? []).map((e) => e.uri),
      [EXT.mid, EXT.playoutDelay],
    );
  });

  it("libdatachannel: announced SSRCs are kept; a recvonly m-line is inactive until a track is bound to it", () => {
    const plain = answer(emptyState(), "libdatachannel-audio-send-video-recv.offer");
    assert.deepEqual(plain.state.sections[0].remoteSsrcs, [1234567]);
    assert.equal(plain.sdp.media[1].direction, "inactive");
    const bound = answer(emptyState(), "libdatachannel-audio-send-video-recv.offer", (d) => {
      assert.equal(d.bindSend("1", spec(VP8, "cam")), undefined);
    });
    const v = bound.sdp.media[1];
    assert.equal(v.direction, "sendonly");
    assert.equal(v.rtp[0].payload, 96);
    assert.deepEqual(v.msid as unknown, [{ id: "0123456789abcdef0123456789abcdef", appdata: "cam" }]);
    assert.ok(v.ssrcs?.some((s) => s.id === 1111 && s.attribute === "cname"));
  });

  it("werift: binding refuses a codec the m-line does not offer and an m-line that does not receive", () => {
    const draft = new AnswerDraft(emptyState(), offerOf("werift-audio-send-recv.offer"));
    assert.match(draft.bindSend("0", spec(OPUS)) ?? "", /does not receive/);
    assert.match(draft.bindSend("1", spec(VP8)) ?? "", /does not offer vp8/);
    assert.equal(draft.bindSend("1", spec(OPUS)), undefined);
  });

  it("with data channels (the native plane): m=application answered live in BUNDLE with sctp-port and max-message-size", () => {
    const draft = new AnswerDraft(emptyState(), offerOf("chromium-audio-sendrecv-datachannel.offer"), {
      dataChannels: true,
    });
    const next = draft.finish();
    const sdp = parse(writeDescription(next, "answer", LOCAL));
    const app = sdp.media[1];
    assert.equal(app.type, "application");
    assert.equal(app.port, 9);
    assert.equal(app.protocol, "UDP/DTLS/SCTP");
    assert.equal(String(app.payloads), "webrtc-datachannel");
    assert.equal(app.sctpPort, 5000);
    assert.equal(app.maxMessageSize, 262_144);
    assert.equal(app.setup, "passive");
    assert.equal(String(sdp.groups?.[0].mids), "0 1");
    // A later offer keeps it; an answer to our own re-offer does too.
    const again = new AnswerDraft(next, offerOf("chromium-audio-sendrecv-datachannel.offer"), {
      dataChannels: true,
    });
    assert.equal(again.finish().sections[1].rejected, false);
  });

  it("without data channels (the werift plane): m=application is rejected (port 0); the audio next to it is answered", () => {
    const { sdp } = answer(emptyState(), "chromium-audio-sendrecv-datachannel.offer");
    assert.equal(sdp.media[1].type, "application");
    assert.equal(sdp.media[1].port, 0);
    assert.equal(String(sdp.groups?.[0].mids), "0");
  });

  it("is transactional: a bad offer throws and the committed state is untouched; a retry gives the same answer", () => {
    const first = answer(emptyState(), "chromium-av-send.offer");
    const before = JSON.stringify(first.state.sections);
    const reordered = fixture("chromium-av-send.offer")
      .replace("a=mid:0", "a=mid:7")
      .replace("BUNDLE 0 1", "BUNDLE 7 1");
    assert.throws(
      () => new AnswerDraft(first.state, parseRemoteDescription("offer", reordered)),
      /only a rejected m-line/,
    );
    assert.equal(JSON.stringify(first.state.sections), before);
    const again1 = answer(first.state, "chromium-av-send.offer");
    const again2 = answer(first.state, "chromium-av-send.offer");
    assert.deepEqual(again1.sdp.media, again2.sdp.media);
  });

  it("a peer may reuse a rejected m-line for a new mid; a live one never", () => {
    const first = answer(emptyState(), "chromium-av-send.offer");
    const stopped = answer(first.state, "chromium-av-audio-stopped.offer");
    const recycled = fixture("chromium-av-send.offer")
      .replace("a=mid:0", "a=mid:2")
      .replace("BUNDLE 0 1", "BUNDLE 2 1");
    const draft = new AnswerDraft(stopped.state, parseRemoteDescription("offer", recycled));
    const next = draft.finish();
    assert.deepEqual(
      next.sections.map((s) => [s.mid, s.rejected]),
      [
        ["2", false],
        ["1", false],
      ],
    );
  });
});

describe("offering (pulls and pushes without an offer)", () => {
  it("failing SDP 1: a pull added to a Chromium audio publish reuses the session's ids: 4=mid, 1=audio-level, 111", () => {
    const pub = answer(emptyState(), "chromium-audio-send.offer");
    const draft = new OfferDraft(pub.state);
    const mid = draft.addSendSection("audio", spec(OPUS, "agent-voice", 111));
    const state = draft.finish();
    const sdp = parse(writeDescription(state, "offer", LOCAL));
    assert.equal(mid, "1");
    assert.equal(sdp.media.length, 2);
    assert.deepEqual(
      (sdp.media[1].ext ?? []).map((e) => [e.value, e.uri]),
      [
        [4, EXT.mid],
        [1, EXT.audioLevel],
      ],
    );
    assert.equal(sdp.media[1].rtp[0].payload, 111);
    assert.equal(sdp.media[1].direction, "sendonly");
    assert.equal(sdp.media[0].direction, "recvonly", "the publish m-line is still offered as we answered it");
    assertOneMeaningPerId(sdp);
  });

  it("an id the session does not number yet gets one no m-line of either side uses", () => {
    // Video first: Chromium numbers 1–11, 13, 14 for its own extensions; audio-level must take 12.
    const pub = answer(emptyState(), "chromium-simulcast-send.offer");
    const draft = new OfferDraft(pub.state);
    draft.addSendSection("audio", spec(OPUS));
    const sdp = parse(writeDescription(draft.finish(), "offer", LOCAL));
    assert.deepEqual(
      (sdp.media[1].ext ?? []).map((e) => [e.value, e.uri]),
      [
        [9, EXT.mid],
        [12, EXT.audioLevel],
      ],
    );
    assertOneMeaningPerId(sdp);
  });

  it("payload types never collide with any the peer uses (RTX included); its own number for the same codec is reused", () => {
    const pub = answer(emptyState(), "chromium-av-send.offer");
    const draft = new OfferDraft(pub.state);
    // This H.264 track's publisher used 96 — the peer here uses 96 for VP8, 97 for RTX and 108 for
    // exactly this H.264 (42e01f, packetization-mode 1).
    draft.addSendSection("video", spec(H264, "h264-cam", 96));
    const sdp = parse(writeDescription(draft.finish(), "offer", LOCAL));
    assert.equal(sdp.media[2].rtp[0].payload, 108);
    assertOneMeaningPerId(sdp);
    // A codec the peer never named gets a number the peer does not use at all.
    const d2 = new OfferDraft(pub.state);
    d2.addSendSection(
      "video",
      spec(
        { name: "h264", clockRate: 90000, fmtp: "packetization-mode=1;profile-level-id=640c1f" },
        "hi",
        96,
      ),
    );
    const pt = parse(writeDescription(d2.finish(), "offer", LOCAL)).media[2].rtp[0].payload;
    const peerPts = new Set(
      offerOf("chromium-av-send.offer").sections.flatMap((s) => s.codecs.map((c) => c.payloadType)),
    );
    assert.ok(!peerPts.has(pt), `PT ${pt} is used by the peer for another codec`);
  });

  it("an m-line we close is rejected and its slot recycled by the next pull of that kind; the BUNDLE tag is only made inactive", () => {
    const pub = answer(emptyState(), "chromium-audio-send.offer");
    const d1 = new OfferDraft(pub.state);
    const a = d1.addSendSection("audio", spec(OPUS, "a"));
    const b = d1.addSendSection("audio", spec(OPUS, "b"));
    const s1 = d1.finish();
    const d2 = new OfferDraft(s1);
    d2.close(a);
    d2.close("0");
    const s2 = d2.finish();
    assert.deepEqual(
      s2.sections.map((s) => [s.mid, s.rejected, s.send !== undefined, s.receive]),
      [
        ["0", false, false, false],
        [a, true, false, false],
        [b, false, true, false],
      ],
    );
    const sdp2 = parse(writeDescription(s2, "offer", LOCAL));
    assert.equal(sdp2.media[1].port, 0);
    assert.equal(sdp2.media[0].direction, "inactive");
    assert.equal(String(sdp2.groups?.[0].mids), `0 ${b}`);
    const d3 = new OfferDraft(s2);
    const c = d3.addSendSection("audio", spec(OPUS, "c"));
    const s3 = d3.finish();
    assert.equal(s3.sections.length, 3, "the rejected slot was reused");
    assert.equal(s3.sections[1].mid, c);
    assert.ok(![a, b, "0"].includes(c), "a fresh mid");
  });

  it("DTLS: the first offer says actpass; the peer's answer settles our role; re-offers keep it", () => {
    const draft = new OfferDraft(emptyState());
    draft.addSendSection("audio", spec(OPUS));
    const pending = draft.finish();
    assert.equal(parse(writeDescription(pending, "offer", LOCAL)).media[0].setup, "actpass");
    const clientAnswer = fixture("chromium-audio-send.offer")
      .replace("a=setup:actpass", "a=setup:active")
      .replace("a=sendonly", "a=recvonly");
    const { state } = applyAnswer(pending, parseRemoteDescription("answer", clientAnswer));
    assert.equal(state.dtlsRole, "server");
    const again = new OfferDraft(state);
    again.addSendSection("audio", spec(OPUS, "two"));
    assert.equal(parse(writeDescription(again.finish(), "offer", LOCAL)).media[0].setup, "passive");
  });

  it("applyAnswer: m-lines the answer rejects are reported; a mismatched answer is refused", () => {
    const draft = new OfferDraft(emptyState());
    draft.addSendSection("audio", spec(OPUS));
    const pending = draft.finish();
    const rejecting = fixture("chromium-audio-send.offer").replace("m=audio 9", "m=audio 0");
    const applied = applyAnswer(pending, parseRemoteDescription("answer", rejecting));
    assert.deepEqual(applied.rejectedMids, ["0"]);
    assert.equal(applied.state.sections[0].send, undefined);
    const wrongMid = fixture("chromium-audio-send.offer")
      .replace("a=mid:0", "a=mid:5")
      .replace("BUNDLE 0", "BUNDLE 5");
    assert.throws(() => applyAnswer(pending, parseRemoteDescription("answer", wrongMid)), /has mid 5/);
  });

  it("push without an offer: our codecs are offered; the answer's first common codec is what the peer sends", () => {
    const draft = new OfferDraft(emptyState());
    const mid = draft.addReceiveSection("video");
    const pending = draft.finish();
    const sdp = parse(writeDescription(pending, "offer", LOCAL));
    assert.deepEqual(
      sdp.media[0].rtp.map((r) => r.codec),
      ["VP8", "H264"],
    );
    assert.equal(sdp.media[0].direction, "recvonly");
    assert.ok((sdp.media[0].ext ?? []).some((e) => e.uri === EXT.rid));
    const h264First = [
      "v=0",
      "o=- 1 2 IN IP4 127.0.0.1",
      "s=-",
      "t=0 0",
      "a=group:BUNDLE 0",
      "m=video 9 UDP/TLS/RTP/SAVPF 102 96",
      "c=IN IP4 0.0.0.0",
      "a=ice-ufrag:abcd",
      "a=ice-pwd:abcdefghijklmnopqrstuvwx",
      "a=fingerprint:sha-256 AA:BB",
      "a=setup:active",
      `a=mid:${mid}`,
      "a=sendonly",
      "a=rtpmap:102 H264/90000",
      "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
      "a=rtpmap:96 VP8/90000",
      "",
    ].join("\r\n");
    const { state } = applyAnswer(pending, parseRemoteDescription("answer", h264First));
    assert.deepEqual(
      state.sections[0].codecs.map((c) => c.name),
      ["h264", "vp8"],
    );
  });
});
