import {
  RTCPeerConnection,
  RTCRtpCodecParameters,
  type RTCRtpTransceiver,
  useAbsSendTime,
  useAudioLevelIndication,
  useFIR,
  useNACK,
  usePLI,
  useSdesMid,
} from "werift";
import { replayEarlyDtls } from "./early-dtls.ts";
import {
  applyCandidatePolicy,
  type CandidatePolicy,
  iceLiteAtSessionLevel,
  preferPassiveSetup,
} from "./sdp.ts";

/** Everything the werift boundary needs to know about the network. */
export interface RtcOptions {
  /** Address the UDP sockets bind to; "0.0.0.0" = every interface (loopback included). */
  listenIp: string;
  announcedIp?: string;
  portRange?: [number, number];
}

/** Opus is payload type 111 like Cloudflare and browsers; video keeps NACK/PLI/FIR feedback. */
export function serverCodecs() {
  const videoFeedback = () => [useNACK(), usePLI(), useFIR()];
  return {
    audio: [
      new RTCRtpCodecParameters({
        mimeType: "audio/opus",
        clockRate: 48000,
        channels: 2,
        payloadType: 111,
        parameters: "minptime=10;useinbandfec=1",
      }),
    ],
    video: [
      new RTCRtpCodecParameters({
        mimeType: "video/VP8",
        clockRate: 90000,
        payloadType: 96,
        rtcpFeedback: videoFeedback(),
      }),
      new RTCRtpCodecParameters({
        mimeType: "video/H264",
        clockRate: 90000,
        payloadType: 102,
        parameters: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
        rtcpFeedback: videoFeedback(),
      }),
    ],
  };
}

export function createServerPeer(opts: RtcOptions): RTCPeerConnection {
  const any = opts.listenIp === "0.0.0.0";
  const loopback = opts.listenIp.startsWith("127.");
  return new RTCPeerConnection({
    // ICE-lite: no gathering against STUN servers, no outbound checks; we learn the peer from its checks.
    iceLite: true,
    iceServers: [],
    iceUseIpv6: false,
    bundlePolicy: "max-bundle",
    // werift skips loopback unless told about it explicitly.
    iceAdditionalHostAddresses: any ? ["127.0.0.1"] : loopback ? [opts.listenIp] : undefined,
    iceInterfaceAddresses: any ? undefined : { udp4: opts.listenIp },
    icePortRange: opts.portRange,
    codecs: serverCodecs(),
    headerExtensions: {
      audio: [useSdesMid(), useAudioLevelIndication()],
      video: [useSdesMid(), useAbsSendTime()],
    },
  });
}

function candidatePolicy(opts: RtcOptions): CandidatePolicy {
  return { listenIp: opts.listenIp === "0.0.0.0" ? undefined : opts.listenIp, announcedIp: opts.announcedIp };
}

/** Apply a remote offer and produce our answer (DTLS passive, policy-filtered candidates). */
export async function answerOffer(pc: RTCPeerConnection, opts: RtcOptions): Promise<string> {
  const answer = await pc.createAnswer();
  await pc.setLocalDescription({ type: "answer", sdp: preferPassiveSetup(answer.sdp) });
  replayEarlyDtls(pc);
  return iceLiteAtSessionLevel(applyCandidatePolicy(pc.localDescription!.sdp, candidatePolicy(opts)));
}

export async function makeOffer(pc: RTCPeerConnection, opts: RtcOptions): Promise<string> {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  replayEarlyDtls(pc);
  return iceLiteAtSessionLevel(applyCandidatePolicy(pc.localDescription!.sdp, candidatePolicy(opts)));
}

export function transceiverByMid(pc: RTCPeerConnection, mid: string): RTCRtpTransceiver | undefined {
  return pc.getTransceivers().find((t) => t.mid === mid);
}

/** The msid announced for what we send on this transceiver: `<publisher session> <track name>`. */
export function setSendMsid(t: RTCRtpTransceiver, streamId: string, trackId: string): void {
  t.sender.streamIds = [streamId];
  (t.sender as { trackId: string }).trackId = trackId;
}
