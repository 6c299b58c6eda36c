// The real Opus audio the benchmark publishers send: a speech-like loop encoded once at start-up.

import { Encoder } from "@evan/opus";
import { speechLike } from "../../test/helpers/signals.ts";

/** A pre-encoded, speech-like Opus loop (stereo 48 kHz, 20 ms frames, VBR at `bitrate`). */
export function encodeOpusLoop(loopMs: number, seed: number, bitrate: number): Buffer[] {
  const pcm = speechLike(loopMs, { seed });
  const enc = new Encoder({ channels: 2, sample_rate: 48000, application: "voip" });
  enc.bitrate = bitrate;
  const out: Buffer[] = [];
  for (let i = 0; i + 1920 <= pcm.length; i += 1920)
    out.push(Buffer.from(enc.encode(pcm.subarray(i, i + 1920))));
  return out;
}
