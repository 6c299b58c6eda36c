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
