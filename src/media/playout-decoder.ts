// The receive side of an Opus track as PCM: packets in (any order, with loss), 20 ms frames of 48 kHz
// stereo s16 out on the playout clock. JitterBuffer orders and times them; OpusDecoder turns each into
// PCM, with FEC from the next packet when it is already there and PLC otherwise, so a frame comes out for
// every slot the jitter buffer grants while playing. Sans-IO: the owner says when (`pop(now)`).

import { JitterBuffer, type JitterPacket } from "./jitter-buffer.ts";
import { OpusDecoder } from "./opus-decoder.ts";
import type { RtpPacket } from "./rtp.ts";

export interface PlayoutFrame {
  pcm: Int16Array;
  /** RTP timestamp of the audio. */
  timestamp: number;
  /** When its packet arrived; NaN for a concealed frame (no packet). */
  arrivalMs: number;
}

interface Arrived extends JitterPacket {
  arrivalMs: number;
}

export class PlayoutDecoder {
  private readonly jitter: JitterBuffer<Arrived>;
  private readonly decoder = new OpusDecoder();
  concealedFrames = 0;

  /** `reorder: false` passes packets through in arrival order (benchmarks). */
  constructor(options: { reorder: boolean }) {
    this.jitter = new JitterBuffer<Arrived>(options.reorder ? {} : { reorder: false });
  }

  get stats() {
    return this.jitter.stats;
  }

  push(packet: RtpPacket, now: number): void {
    // Padding-only packets (bandwidth probes) carry no audio: the jitter buffer must not see them.
    if (packet.payload.length === 0) return;
    this.jitter.push(
      {
        sequenceNumber: packet.header.sequenceNumber,
        timestamp: packet.header.timestamp,
        payload: packet.payload,
        marker: packet.header.marker,
        arrivalMs: now,
      },
      now,
    );
  }

  /** Every frame due at `now` (one per distinct `now` while playing), in order. */
  pop(now: number, emit: (frame: PlayoutFrame) => void): void {
    for (;;) {
      const r = this.jitter.pop(now);
      if (r.kind === "empty") return;
      if (r.kind === "packet") {
        let pcm: Int16Array;
        try {
          pcm = this.decoder.decode(r.packet.payload);
        } catch {
          pcm = this.decoder.conceal(960); // a corrupt packet is concealed like a lost one
          this.concealedFrames++;
        }
        emit({ pcm, timestamp: r.packet.timestamp, arrivalMs: r.packet.arrivalMs });
      } else {
        const pcm = r.next
          ? this.decoder.decodeFec(r.next.payload, r.samples)
          : this.decoder.conceal(r.samples);
        this.concealedFrames++;
        emit({ pcm, timestamp: r.timestamp, arrivalMs: Number.NaN });
      }
    }
  }

  close(): void {
    this.decoder.close();
  }
}
