// The one PCM format of the WebSocket adapter wire (SPEC §2.2): s16le, 48 kHz, 2 channels interleaved,
// cut into 20 ms frames because that is the Opus frame duration we put on the WebRTC side (one frame = one
// RTP packet). Everything that sizes audio imports these rather than re-deriving 960/3840.

export const SAMPLE_RATE = 48_000;
export const CHANNELS = 2;
export const FRAME_MS = 20;
/** Samples per channel in one frame. */
export const FRAME_SAMPLES = (SAMPLE_RATE / 1000) * FRAME_MS; // 960
/** Int16 values in one interleaved frame. */
export const FRAME_VALUES = FRAME_SAMPLES * CHANNELS; // 1920
export const BYTES_PER_SAMPLE = 2;
export const FRAME_BYTES = FRAME_VALUES * BYTES_PER_SAMPLE; // 3840
/** RTP timestamp units (48 kHz clock, RFC 7587) covered by one frame. */
export const RTP_TICKS_PER_FRAME = FRAME_SAMPLES;

/**
 * What an adapter's endpoint speaks (issue 14): PCM s16le at 8/16/24/48 kHz, mono or stereo, or G.711 at
 * 8 kHz mono. The default, 48 kHz stereo PCM, is Cloudflare's and the only one that needs no conversion.
 */
export type AdapterEncoding = "pcm" | "pcmu" | "pcma";

export interface AdapterAudioFormat {
  encoding: AdapterEncoding;
  sampleRate: number;
  channels: 1 | 2;
}

export const WIRE_FORMAT: AdapterAudioFormat = {
  encoding: "pcm",
  sampleRate: SAMPLE_RATE,
  channels: CHANNELS,
};
export const PCM_RATES = [8_000, 16_000, 24_000, 48_000] as const;

export function isWireFormat(f: AdapterAudioFormat): boolean {
  return f.encoding === "pcm" && f.sampleRate === SAMPLE_RATE && f.channels === CHANNELS;
}

/** Bytes per sample of one channel. */
export function sampleBytes(f: AdapterAudioFormat): number {
  return f.encoding === "pcm" ? 2 : 1;
}

/** Bytes in 20 ms of `f`. */
export function frameBytesOf(f: AdapterAudioFormat): number {
  return ((f.sampleRate * FRAME_MS) / 1000) * f.channels * sampleBytes(f);
}

/** The byte that is silence in `f` (0 is full scale negative in µ-law). */
export function silenceByteOf(f: AdapterAudioFormat): number {
  return f.encoding === "pcmu" ? 0xff : f.encoding === "pcma" ? 0xd5 : 0;
}

/** "pcm 16000 Hz mono", for logs and status. */
export function describeFormat(f: AdapterAudioFormat): string {
  return `${f.encoding} ${f.sampleRate} Hz ${f.channels === 1 ? "mono" : "stereo"}`;
}
