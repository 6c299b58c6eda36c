// WAV files of wire-format PCM (48 kHz stereo s16). `encodeWav`/`decodeWav` use the `wavefile` library
// (which packs sample by sample, ~15 ms per second of stereo audio); the recorder streams its files instead:
// `wavHeader` first (sizes patched when the recording ends), then the PCM as it arrives.

import { readFile, rename, rm, writeFile } from "node:fs/promises";
import wavefile from "wavefile";
import { bytesToPcm } from "../client/endpoint.ts";

const { WaveFile } = wavefile;

/** A WAV file of interleaved s16 PCM. */
export function encodeWav(pcm: Int16Array, sampleRate = 48_000, channels = 2): Uint8Array {
  const wav = new WaveFile();
  wav.fromScratch(channels, sampleRate, "16", pcm);
  return wav.toBuffer();
}

/** Bytes of the canonical PCM WAV header (RIFF + fmt + data chunk headers). */
export const WAV_HEADER_BYTES = 44;

/** The 44-byte header of a 16-bit PCM WAV file with `dataBytes` of samples. */
export function wavHeader(dataBytes: number, sampleRate = 48_000, channels = 2): Uint8Array {
  const header = new Uint8Array(WAV_HEADER_BYTES);
  const view = new DataView(header.buffer);
  const ascii = (offset: number, text: string) => {
    for (let i = 0; i < text.length; i++) header[offset + i] = text.charCodeAt(i);
  };
  const blockAlign = channels * 2;
  ascii(0, "RIFF");
  view.setUint32(4, 36 + dataBytes, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true); // fmt chunk size
  view.setUint16(20, 1, true); // PCM
  view.setUint16(22, channels, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * blockAlign, true);
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, 16, true);
  ascii(36, "data");
  view.setUint32(40, dataBytes, true);
  return header;
}

export interface WavInfo {
  sampleRate: number;
  channels: number;
  bitsPerSample: number;
  /** Interleaved samples. */
  samples: Int16Array;
  durationMs: number;
}

/** Parses a 16-bit PCM WAV file. */
export function decodeWav(bytes: Uint8Array): WavInfo {
  const wav = new WaveFile(bytes);
  const fmt = wav.fmt as { numChannels: number; sampleRate: number; bitsPerSample: number };
  const samples = wav.getSamples(true, Int16Array) as unknown as Int16Array;
  return {
    sampleRate: fmt.sampleRate,
    channels: fmt.numChannels,
    bitsPerSample: fmt.bitsPerSample,
    samples,
    durationMs: (samples.length / fmt.numChannels / fmt.sampleRate) * 1000,
  };
}

/**
 * Turns a raw s16le file (48 kHz stereo) into a WAV file at `wavPath` (written beside it under a temporary
 * name, then renamed, so a listed .wav is always complete) and deletes the raw file.
 */
export async function rawFileToWav(
  rawPath: string,
  wavPath: string,
): Promise<{ bytes: number; frames: number }> {
  const raw = await readFile(rawPath);
  const usable = raw.length - (raw.length % 4);
  const samples = bytesToPcm(raw.subarray(0, usable));
  const wav = encodeWav(samples);
  const tmp = `${wavPath}.tmp`;
  await writeFile(tmp, wav);
  await rename(tmp, wavPath);
  await rm(rawPath, { force: true });
  return { bytes: wav.length, frames: usable / 4 };
}
