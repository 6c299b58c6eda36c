import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type DemuxStream, RtpDemuxer, type RtpHeaderView } from "../../src/media/rtp-demuxer.ts";

const enc = new TextEncoder();

function pkt(ssrc: number, payloadType: number, ext: Record<number, string> = {}): RtpHeaderView {
  return {
    ssrc,
    payloadType,
    extension: (id) => (ext[id] === undefined ? undefined : enc.encode(ext[id])),
  };
}

const AUDIO: DemuxStream = { mid: "0", payloadTypes: [111], ssrcs: [], rids: [], midExtensionId: 4 };
const SIMULCAST: DemuxStream = {
  mid: "1",
  payloadTypes: [96],
  ssrcs: [],
  rids: ["q", "h", "f"],
  midExtensionId: 4,
  ridExtensionId: 10,
};

describe("RtpDemuxer", () => {
  it("binds an SSRC by its MID extension and keeps it when later packets drop MID", () => {
    const d = new RtpDemuxer();
    d.setStreams([AUDIO]);
    assert.deepEqual(d.route(pkt(7, 111, { 4: "0" })), { mid: "0", layer: 0 });
    assert.deepEqual(d.route(pkt(7, 111)), { mid: "0", layer: 0 });
    assert.deepEqual(d.counts, { bySsrc: 1, byMid: 1, byPayloadType: 0, unroutable: 0 });
  });

  it("routes simulcast layers by RID, each SSRC to its layer", () => {
    const d = new RtpDemuxer();
    d.setStreams([AUDIO, SIMULCAST]);
    assert.deepEqual(d.route(pkt(100, 96, { 4: "1", 10: "f" })), { mid: "1", layer: 2 });
    assert.deepEqual(d.route(pkt(101, 96, { 4: "1", 10: "q" })), { mid: "1", layer: 0 });
    assert.deepEqual(d.route(pkt(100, 96)), { mid: "1", layer: 2 });
    assert.equal(d.ssrcOf("1", 0), 101);
    // A simulcast m-line without a RID, or with an unknown one, routes nowhere (and binds nothing).
    assert.equal(d.route(pkt(102, 96, { 4: "1" })), undefined);
    assert.equal(d.route(pkt(103, 96, { 4: "1", 10: "x" })), undefined);
    assert.equal(d.route(pkt(103, 96)), undefined);
  });

  it("SSRCs announced in the SDP are bound up front", () => {
    const d = new RtpDemuxer();
    d.setStreams([{ ...AUDIO, ssrcs: [555], midExtensionId: undefined }]);
    assert.deepEqual(d.route(pkt(555, 111)), { mid: "0", layer: 0 });
  });

  it("falls back to a payload type only one plain m-line negotiated, once", () => {
    const d = new RtpDemuxer();
    d.setStreams([{ ...AUDIO, midExtensionId: undefined }]);
    assert.deepEqual(d.route(pkt(9, 111)), { mid: "0", layer: 0 });
    assert.equal(d.route(pkt(10, 111)), undefined, "a second SSRC on that m-line is not guessed");
    const two = new RtpDemuxer();
    two.setStreams([
      { ...AUDIO, midExtensionId: undefined },
      { ...AUDIO, mid: "2", midExtensionId: undefined },
    ]);
    assert.equal(two.route(pkt(9, 111)), undefined, "ambiguous payload type");
  });

  it("drops a payload type the m-line did not negotiate, and a MID nobody has", () => {
    const d = new RtpDemuxer();
    d.setStreams([AUDIO]);
    assert.equal(d.route(pkt(7, 96, { 4: "0" })), undefined);
    assert.equal(d.route(pkt(8, 111, { 4: "9" })), undefined);
    d.route(pkt(7, 111, { 4: "0" }));
    assert.equal(d.route(pkt(7, 0)), undefined);
  });

  it("keeps bindings across a new table while their m-line lives, forgets them when it goes", () => {
    const d = new RtpDemuxer();
    d.setStreams([AUDIO, SIMULCAST]);
    d.route(pkt(7, 111, { 4: "0" }));
    d.route(pkt(100, 96, { 4: "1", 10: "h" }));
    d.setStreams([AUDIO]);
    assert.deepEqual(d.route(pkt(7, 111)), { mid: "0", layer: 0 });
    assert.equal(d.route(pkt(100, 96)), undefined);
  });

  it("a flood of new SSRCs cannot grow the table without bound", () => {
    const d = new RtpDemuxer();
    d.setStreams([AUDIO]);
    for (let s = 1; s <= 10_000; s++) d.route(pkt(s, 111, { 4: "0" }));
    // Past the cap, packets still route by MID; they are just not remembered.
    assert.deepEqual(d.route(pkt(20_000, 111, { 4: "0" })), { mid: "0", layer: 0 });
    assert.equal(d.route(pkt(20_000, 111)), undefined);
  });
});
