// Converts between an adapter endpoint's audio format and the wire format the media path uses inside
// (48 kHz stereo s16, 20 ms frames: what Opus encodes and decodes). One converter per adapter and
// direction, chosen once at creation; it is stateful because resampling is a filter across frames.
//
// Order of operations keeps the expensive step on as few channels as possible: a mono endpoint is
// resampled as mono and only then duplicated to stereo; towards a mono endpoint the two channels are
// averaged first and then resampled.

import {
  type AdapterAudioFormat,
  FRAME_SAMPLES,
  FRAME_VALUES,
  isWireFormat,
  SAMPLE_RATE,
} from "./audio-format.ts";
import { decodeAlaw, decodeMulaw, encodeAlaw, encodeMulaw } from "./g711.ts";
import { StreamResampler } from "./stream-resampler.ts";

const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** s16le bytes (a frame from PcmFramer: own buffer, offset 0) → samples, in place on little-endian hosts. */
function s16le(frame: Uint8Array): Int16Array {
  if (HOST_IS_LITTLE_ENDIAN) return new Int16Array(frame.buffer, frame.byteOffset, frame.byteLength >> 1);
  const out = new Int16Array(frame.byteLength >> 1);
  for (let i = 0; i < out.length; i++) out[i] = ((frame[2 * i] | (frame[2 * i + 1] << 8)) << 16) >> 16;
  return out;
}

function toS16le(pcm: Int16Array): Uint8Array {
  if (HOST_IS_LITTLE_ENDIAN) return new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const out = new Uint8Array(pcm.length * 2);
  for (let i = 0; i < pcm.length; i++) {
    out[2 * i] = pcm[i] & 0xff;
    out[2 * i + 1] = (pcm[i] >> 8) & 0xff;
  }
  return out;
}

/** A resampler between the two rates (on the endpoint's channel count), or none when they are equal. */
function resamplerFor(fromRate: number, toRate: number, channels: number): StreamResampler | undefined {
  return fromRate === toRate ? undefined : new StreamResampler({ fromRate, toRate, channels });
}

/** Endpoint frames (20 ms of the endpoint's format, as PcmFramer cuts them) → wire frames. */
export class ToWireConverter {
  private readonly resampler: StreamResampler | undefined;
  private readonly identity: boolean;

  constructor(readonly format: AdapterAudioFormat) {
    this.identity = isWireFormat(format);
    this.resampler = resamplerFor(format.sampleRate, SAMPLE_RATE, format.channels);
  }

  /** One endpoint frame → one 20 ms wire frame (FRAME_VALUES interleaved stereo samples). */
  convert(frame: Uint8Array): Int16Array {
    if (this.identity) return s16le(frame);
    const f = this.format;
    let pcm =
      f.encoding === "pcmu" ? decodeMulaw(frame) : f.encoding === "pcma" ? decodeAlaw(frame) : s16le(frame);
    if (this.resampler) pcm = this.resampler.process(pcm);
    if (f.channels === 2) return pcm;
    const out = new Int16Array(FRAME_VALUES);
    for (let i = 0; i < FRAME_SAMPLES; i++) out[2 * i] = out[2 * i + 1] = pcm[i];
    return out;
  }
}

/** Wire frames (20 ms, 48 kHz stereo) → endpoint bytes. */
export class FromWireConverter {
  private readonly resampler: StreamResampler | undefined;
  private readonly identity: boolean;

  constructor(readonly format: AdapterAudioFormat) {
    this.identity = isWireFormat(format);
    this.resampler = resamplerFor(SAMPLE_RATE, format.sampleRate, format.channels);
  }

  /** One wire frame → 20 ms of the endpoint's format. The result may view `pcm` (identity). */
  convert(pcm: Int16Array): Uint8Array {
    if (this.identity) return toS16le(pcm);
    const f = this.format;
    let x = pcm;
    if (f.channels === 1) {
      x = new Int16Array(FRAME_SAMPLES);
      // Average, not sum: a full-scale stereo signal must not clip (>> 1 floors, symmetric enough for audio).
      for (let i = 0; i < FRAME_SAMPLES; i++) x[i] = (pcm[2 * i] + pcm[2 * i + 1]) >> 1;
    }
    if (this.resampler) x = this.resampler.process(x);
    return f.encoding === "pcmu" ? encodeMulaw(x) : f.encoding === "pcma" ? encodeAlaw(x) : toS16le(x);
  }
}
