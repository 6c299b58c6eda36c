/**
 * Routes inbound RTP of one BUNDLE transport to its m-line and simulcast layer, the way RFC 8843 §9.2 and
 * RFC 8852 ask: an SSRC already bound wins; otherwise the MID header extension names the m-line and the
 * RID extension the layer, and the SSRC is bound for every later packet (browsers stop sending MID/RID
 * after a while). SSRCs announced in the SDP are bound up front; as a last resort a payload type that only
 * one plain m-line negotiated identifies it (peers that send neither SSRC lines nor MID, e.g. some
 * embedded stacks). Pure: the caller parses packets and supplies the extension bytes.
 */
export interface DemuxStream {
  mid: string;
  payloadTypes: readonly number[];
  ssrcs: readonly number[];
  /** Simulcast rids in layer order; empty for one stream. */
  rids: readonly string[];
  midExtensionId?: number;
  ridExtensionId?: number;
}

export interface DemuxTarget {
  mid: string;
  layer: number;
}

export interface RtpHeaderView {
  ssrc: number;
  payloadType: number;
  /** Header extension payload by id, or undefined. */
  extension(id: number): Uint8Array | undefined;
}

/** A hostile peer could otherwise grow the binding table without bound. */
const MAX_BINDINGS = 256;

const decoder = new TextDecoder();

export class RtpDemuxer {
  private streams = new Map<string, DemuxStream>();
  private bySsrc = new Map<number, DemuxTarget>();
  /** How packets were routed (counters for tests and stats). */
  readonly counts = { bySsrc: 0, byMid: 0, byPayloadType: 0, unroutable: 0 };

  /** Replace the routing table. Bindings learned for m-lines (and rids) that still exist are kept. */
  setStreams(streams: readonly DemuxStream[]): void {
    this.streams = new Map(streams.map((s) => [s.mid, s]));
    const kept = new Map<number, DemuxTarget>();
    for (const [ssrc, target] of this.bySsrc) {
      const s = this.streams.get(target.mid);
      if (s && (s.rids.length === 0 ? target.layer === 0 : target.layer < s.rids.length))
        kept.set(ssrc, target);
    }
    this.bySsrc = kept;
    for (const s of streams)
      if (s.rids.length === 0) for (const ssrc of s.ssrcs) this.bySsrc.set(ssrc, { mid: s.mid, layer: 0 });
  }

  /**
   * The fast path for the steady state: the target of an SSRC already bound whose payload type its m-line
   * negotiated, or undefined (then call `route` with the extensions).
   */
  routeKnown(ssrc: number, payloadType: number): DemuxTarget | undefined {
    const bound = this.bySsrc.get(ssrc);
    if (!bound) return undefined;
    const s = this.streams.get(bound.mid);
    if (!s?.payloadTypes.includes(payloadType)) return undefined;
    this.counts.bySsrc++;
    return bound;
  }

  route(packet: RtpHeaderView): DemuxTarget | undefined {
    const bound = this.bySsrc.get(packet.ssrc);
    if (bound) {
      const s = this.streams.get(bound.mid);
      if (s?.payloadTypes.includes(packet.payloadType)) {
        this.counts.bySsrc++;
        return bound;
      }
      if (!s) this.bySsrc.delete(packet.ssrc);
      else {
        this.counts.unroutable++;
        return undefined;
      }
    }
    const viaMid = this.routeByExtensions(packet);
    if (viaMid) {
      this.bind(packet.ssrc, viaMid);
      this.counts.byMid++;
      return viaMid;
    }
    if (this.carriesMid(packet)) {
      // It names an m-line (or a layer) we do not have: guessing by payload type would misroute it.
      this.counts.unroutable++;
      return undefined;
    }
    const viaPt = this.routeByPayloadType(packet.payloadType);
    if (viaPt) {
      this.bind(packet.ssrc, viaPt);
      this.counts.byPayloadType++;
      return viaPt;
    }
    this.counts.unroutable++;
    return undefined;
  }

  /** The SSRC currently bound to an m-line's layer (for keyframe requests and receiver reports). */
  ssrcOf(mid: string, layer: number): number | undefined {
    for (const [ssrc, t] of this.bySsrc) if (t.mid === mid && t.layer === layer) return ssrc;
    return undefined;
  }

  private routeByExtensions(packet: RtpHeaderView): DemuxTarget | undefined {
    for (const s of this.streams.values()) {
      if (s.midExtensionId === undefined) continue;
      const mid = packet.extension(s.midExtensionId);
      if (!mid || decoder.decode(mid) !== s.mid) continue;
      if (!s.payloadTypes.includes(packet.payloadType)) return undefined;
      if (s.rids.length === 0) return { mid: s.mid, layer: 0 };
      if (s.ridExtensionId === undefined) return undefined;
      const rid = packet.extension(s.ridExtensionId);
      if (!rid) return undefined;
      const layer = s.rids.indexOf(decoder.decode(rid));
      return layer < 0 ? undefined : { mid: s.mid, layer };
    }
    return undefined;
  }

  private carriesMid(packet: RtpHeaderView): boolean {
    for (const s of this.streams.values())
      if (s.midExtensionId !== undefined && packet.extension(s.midExtensionId) !== undefined) return true;
    return false;
  }

  private routeByPayloadType(payloadType: number): DemuxTarget | undefined {
    let found: DemuxStream | undefined;
    for (const s of this.streams.values()) {
      if (!s.payloadTypes.includes(payloadType)) continue;
      if (found || s.rids.length > 0) return undefined;
      found = s;
    }
    if (!found) return undefined;
    // Only while that m-line has no stream yet: a second SSRC on it is not guessable.
    for (const t of this.bySsrc.values()) if (t.mid === found.mid) return undefined;
    return { mid: found.mid, layer: 0 };
  }

  private bind(ssrc: number, target: DemuxTarget): void {
    if (this.bySsrc.size >= MAX_BINDINGS) return;
    this.bySsrc.set(ssrc, target);
  }
}
