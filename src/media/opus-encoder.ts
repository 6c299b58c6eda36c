// OpusEncoder: the ingest track's encoder, a thin wrapper over @evan/opus (libopus) for 48 kHz stereo,
// one 20 ms frame in, one Opus packet out.
//
// Settings, and why:
// - application "audio", not "voip": the adapter is a transport, and its input is TTS, recordings, music on
//   hold — already clean. "voip" adds a high-pass and speech-intelligibility shaping that measurably alter
//   the signal (speechLike envelope correlation 0.983 with voip vs 0.999 with audio at 48 kb/s), and at
//   48 kb/s there is no bit pressure for it to pay off.
// - 48 kb/s VBR stereo: high quality for speech and acceptable for music, small next to any video
//   stream; measured speechLike envelope/waveform correlation 0.999/0.996 after a round trip.
// - inband FEC on with expected loss 10 %: libopus only emits FEC (LBRR) data when the expected loss is
//   above zero, and only in SILK/hybrid mode. Measured at 48 kb/s stereo: 5 % still leaves ~80 % of
//   speech frames in CELT mode (no FEC); 10 % keeps speech in hybrid so subscribers' decoders (browsers
//   negotiate useinbandfec=1) can recover a lost packet from the next one.
// - DTX off: SPEC §2.5 wants a packet every 20 ms, and we produce silence ourselves (below).
// - complexity 9: libopus's default; lower saves ~30 % CPU for slightly worse quality.
//
// Measured encode cost (throwaway script, not a test: 10 s of speechLike audio = 500 frames, after warm-up,
// median of 5 runs, native x64 addon, 2-vCPU AMD EPYC container shared with other jobs): ≈ 0.32–0.38 ms
// per 20 ms frame with the settings above (hybrid + FEC), i.e. ~1.6–1.9 % of one core per ingest track;
// ≈ 0.16–0.20 ms with FEC off (mostly CELT); ≈ 0.23–0.28 ms at complexity 5. silenceFrame() ≈ 0.2 µs.
//
// Silence: `silenceFrame()` is the canonical 3-byte Opus packet 0xF8 0xFF 0xFE (TOC config 31 = CELT
// fullband 20 ms, stereo, one frame; payload decodes to digital silence) — 3 bytes instead of encoding
// zeros, and no CPU. But the encoder holds 6.5 ms of lookahead: if a talk-spurt were followed directly by
// canned silence, its last few ms would never be emitted (measured: energy of the final 3 ms of a tone
// 0.2× instead of 0.95×), and the stale state would smear into the next talk-spurt (onset envelope
// correlation 0.964 vs 0.998). `encodeSlot()` handles both: the first silent slot after audio encodes real
// zeros (flushing the tail), later silent slots use the canned packet, and the first audio frame after
// canned silence starts from a reset encoder, so a talk-spurt encodes exactly as from a fresh encoder.

import { Encoder } from "@evan/opus";
import { CHANNELS, FRAME_VALUES, SAMPLE_RATE } from "./audio-format.ts";

export type OpusApplication = "audio" | "voip";

export interface OpusEncoderOptions {
  /** Default "audio" (see the file comment). */
  application?: OpusApplication;
  /** Bits per second. Default 48 000. */
  bitrate?: number;
  /** Expected packet loss for FEC sizing, 0–100. Default 10; 0 disables FEC data in practice. */
  packetLossPercent?: number;
  /** Default true. */
  inbandFec?: boolean;
  /** 0–10. Default 9. */
  complexity?: number;
}

const SILENCE_PACKET: readonly number[] = [0xf8, 0xff, 0xfe];

type ComplexityLevel = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10;

function isComplexity(value: number): value is ComplexityLevel {
  return Number.isInteger(value) && value >= 0 && value <= 10;
}

export class OpusEncoder {
  readonly application: OpusApplication;
  readonly bitrate: number;
  readonly #encoder: Encoder;
  readonly #zeros = new Int16Array(FRAME_VALUES);
  // What the previous encodeSlot() produced: decides flush-with-zeros vs canned silence vs reset.
  #previousSlot: "none" | "audio" | "flushed" | "canned" = "none";

  constructor(options: OpusEncoderOptions = {}) {
    this.application = options.application ?? "audio";
    this.bitrate = options.bitrate ?? 48_000;
    const complexity = options.complexity ?? 9;
    // Expected loss only matters for FEC sizing; without FEC it would just bias the mode decision.
    const loss = options.packetLossPercent ?? (options.inbandFec === false ? 0 : 10);
    if (!Number.isInteger(this.bitrate) || this.bitrate < 6_000 || this.bitrate > 510_000) {
      throw new RangeError(`bitrate must be an integer in [6000, 510000], got ${this.bitrate}`);
    }
    if (!isComplexity(complexity))
      throw new RangeError(`complexity must be an integer 0–10, got ${complexity}`);
    if (!(loss >= 0 && loss <= 100))
      throw new RangeError(`packetLossPercent must be in [0, 100], got ${loss}`);
    this.#encoder = new Encoder({
      channels: CHANNELS,
      sample_rate: SAMPLE_RATE,
      application: this.application,
    });
    this.#encoder.bitrate = this.bitrate;
    this.#encoder.vbr = true;
    this.#encoder.dtx = false;
    this.#encoder.complexity = complexity;
    this.#encoder.inband_fec = options.inbandFec ?? true;
    this.#encoder.packet_loss = Math.round(loss);
  }

  /**
   * The loss (%) the encoder plans for from the next frame on: with inband FEC enabled, 0 means no FEC data
   * (and the cheap CELT-leaning mode), ≥ 10 keeps speech in SILK/hybrid with FEC (AdaptiveFec decides).
   */
  setExpectedLoss(percent: number): void {
    if (!(percent >= 0 && percent <= 100))
      throw new RangeError(`expected loss must be 0–100 %, got ${percent}`);
    this.#encoder.packet_loss = Math.round(percent);
  }

  /** Encoder delay in samples per channel (decoded audio lags the input by this much). */
  get lookaheadSamples(): number {
    // lib.d.ts misspells the getter ("lookhead"); the runtime property is "lookahead".
    return (this.#encoder as unknown as { lookahead: number }).lookahead;
  }

  /** Encodes one 20 ms interleaved stereo frame. Returns a fresh buffer the caller owns. */
  encode(frame: Int16Array): Uint8Array {
    if (frame.length !== FRAME_VALUES) {
      throw new RangeError(
        `OpusEncoder.encode: frame must have ${FRAME_VALUES} samples, got ${frame.length}`,
      );
    }
    // The native binding copies out of a shared buffer (slice), so the result is ours to keep.
    return this.#encoder.encode(frame);
  }

  /** 20 ms of Opus silence (the canonical CELT silence packet). A fresh 3-byte copy each call. */
  silenceFrame(): Uint8Array {
    return Uint8Array.from(SILENCE_PACKET);
  }

  /**
   * The packet for one scheduler slot: `frame` encoded, or silence when null — keeping the encoder's
   * lookahead and state right across silence gaps (see the file comment). Use this on the media path.
   */
  encodeSlot(frame: Int16Array | null): Uint8Array {
    if (frame === null) {
      if (this.#previousSlot === "audio") {
        this.#previousSlot = "flushed";
        return this.encode(this.#zeros);
      }
      if (this.#previousSlot !== "none") this.#previousSlot = "canned";
      return this.silenceFrame();
    }
    if (this.#previousSlot === "canned") this.#encoder.reset();
    this.#previousSlot = "audio";
    return this.encode(frame);
  }

  /** Forgets all codec state (e.g. when a track restarts). */
  reset(): void {
    this.#encoder.reset();
    this.#previousSlot = "none";
  }
}
