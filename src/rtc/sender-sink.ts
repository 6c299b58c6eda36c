import type { RTCRtpTransceiver } from "werift";
import { ntpTime, RtcpPayloadSpecificFeedback, RtpHeader } from "werift";
import type { RtpPacket } from "../media/rtp.ts";
import { RtpRewriter } from "../media/rtp-rewriter.ts";
import type { Track, TrackSink } from "../sfu/track.ts";

const MID_URI = "urn:ietf:params:rtp-hdrext:sdes:mid";
/** Extensions whose meaning survives forwarding unchanged; everything else is dropped. */
const PASS_THROUGH = new Set([
  "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
  "urn:3gpp:video-orientation",
  "http://www.webrtc.org/experiments/rtp-hdrext/playout-delay",
]);
const FIR_COUNT = 4;

export interface SenderSinkStats {
  onForwarded?(): void;
  onRetransmit?(): void;
}

/**
 * Forwards a track's packets out of one transceiver of a werift peer connection.
 *
 * We write to the DTLS transport ourselves instead of `sender.sendRtp()`: werift's sender mutates the
 * packet and keeps its own NACK history per sender. Writing directly lets every subscriber share the
 * track's one packet cache (NACKs map back through the rewriter) and never touches the shared packet.
 */
export class PeerSenderSink implements TrackSink {
  private readonly rewriter = new RtpRewriter();
  private extSource: unknown;
  private midExt: { id: number; payload: Buffer } | undefined;
  private extMap = new Map<number, number>();
  private track: Track | undefined;
  private rtcpStarted = false;
  private readonly disposers: (() => void)[] = [];
  forwarded = 0;
  /** Packets dropped because the transport was not connected yet. */
  notReady = 0;
  retransmitted = 0;
  ended: string | undefined;

  constructor(
    readonly transceiver: RTCRtpTransceiver,
    private readonly stats: SenderSinkStats = {},
  ) {
    const sender = transceiver.sender;
    this.disposers.push(
      sender.onGenericNack.subscribe((nack) => this.retransmit(nack.lost)).unSubscribe,
      sender.onPictureLossIndication.subscribe(() => this.track?.requestKeyframe()).unSubscribe,
      sender.onRtcp.subscribe((rtcp) => {
        if (rtcp instanceof RtcpPayloadSpecificFeedback && rtcp.feedback.count === FIR_COUNT)
          this.track?.requestKeyframe();
      }).unSubscribe,
    );
  }

  onPacket(packet: RtpPacket, track: Track): void {
    this.track = track;
    if (packet.payload.length === 0) return; // padding-only probes carry nothing for this receiver
    const out = this.rewriter.map(packet.header.sequenceNumber, packet.header.timestamp);
    if (this.send(packet, out.sequenceNumber, out.timestamp, track)) {
      this.forwarded++;
      this.stats.onForwarded?.();
    }
  }

  onTrackEnded(_track: Track, reason: string): void {
    this.ended = reason;
    this.dispose();
  }

  dispose(): void {
    for (const d of this.disposers.splice(0)) d();
  }

  private retransmit(lost: number[]): void {
    const track = this.track;
    if (!track) return;
    for (const seq of lost) {
      const src = this.rewriter.toSource(seq);
      const packet = src === undefined ? undefined : track.cached(src);
      if (!packet) continue;
      const out = this.rewriter.map(packet.header.sequenceNumber, packet.header.timestamp);
      if (this.send(packet, out.sequenceNumber, out.timestamp, track)) {
        this.retransmitted++;
        this.stats.onRetransmit?.();
      }
    }
  }

  private send(packet: RtpPacket, sequenceNumber: number, timestamp: number, track: Track): boolean {
    const sender = this.transceiver.sender;
    const dtls = sender.dtlsTransport;
    const codec = sender.codec;
    if (dtls?.state !== "connected" || !codec) {
      this.notReady++;
      return false;
    }
    const payloadType =
      track.codec && track.codec.mimeType.toLowerCase() !== codec.mimeType.toLowerCase()
        ? (this.transceiver.getPayloadType(track.codec.mimeType) ?? codec.payloadType)
        : codec.payloadType;
    const header = new RtpHeader({
      marker: packet.header.marker,
      payloadType,
      sequenceNumber,
      timestamp,
      ssrc: sender.ssrc,
      csrc: packet.header.csrc,
      csrcLength: packet.header.csrcLength,
      extensions: this.extensions(packet, track),
    });
    void dtls.sendRtp(packet.payload, header);
    // Keep werift's sender-report state current: it builds its periodic SRs from these fields.
    const sr = sender as unknown as SenderReportState;
    sr.packetCount = (sr.packetCount + 1) >>> 0;
    sr.octetCount += packet.payload.length;
    // The (NTP, RTP) pair only has to describe one instant; refreshing it every 16th packet keeps SRs exact
    // while taking the clock read off the per-packet path.
    if ((sr.packetCount & 15) === 1) {
      sr.rtpTimestamp = timestamp;
      sr.ntpTimestamp = ntpTime();
    }
    if (!this.rtcpStarted) {
      this.rtcpStarted = true;
      void sender.runRtcp();
    }
    return true;
  }

  private extensions(packet: RtpPacket, track: Track): { id: number; payload: Buffer }[] {
    const negotiated = (
      this.transceiver.sender as unknown as { headerExtensions: { id: number; uri: string }[] }
    ).headerExtensions;
    if (negotiated !== this.extSource) this.rebuildExtensionMap(negotiated, track);
    const out: { id: number; payload: Buffer }[] = [];
    if (this.midExt) out.push(this.midExt);
    const src = packet.header.extensions;
    for (let i = 0; i < src.length; i++) {
      const id = this.extMap.get(src[i].id);
      if (id !== undefined) out.push({ id, payload: src[i].payload });
    }
    return out;
  }

  private rebuildExtensionMap(negotiated: { id: number; uri: string }[], track: Track): void {
    this.extSource = negotiated;
    this.extMap.clear();
    const mid = this.transceiver.mid;
    const midDef = negotiated.find((e) => e.uri === MID_URI);
    this.midExt = midDef && mid ? { id: midDef.id, payload: Buffer.from(mid) } : undefined;
    for (const e of negotiated) {
      if (!PASS_THROUGH.has(e.uri)) continue;
      for (let id = 1; id < 256; id++) {
        if (track.extensionUri(id) === e.uri) this.extMap.set(id, e.id);
      }
    }
  }
}

/** werift keeps these private; they feed the RTCP sender reports it emits on its own schedule. */
interface SenderReportState {
  packetCount: number;
  octetCount: number;
  rtpTimestamp: number;
  ntpTimestamp: bigint;
}
