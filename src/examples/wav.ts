// WAV files of wire-format PCM (48 kHz stereo s16), written with the `wavefile` library. wavefile packs
// sample by sample (~15 ms per second of stereo audio), so the recorder calls this on the worker thread.

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
