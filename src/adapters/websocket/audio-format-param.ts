import { ApiError } from "../../api/errors.ts";
import { type AdapterAudioFormat, PCM_RATES, SAMPLE_RATE } from "../../media/audio-format.ts";

// The endpoint's audio format of an adapters/websocket/new item (issue 14): `inputCodec` (ingest) or
// `outputCodec` (egress) "pcm" | "pcmu" | "pcma", with optional `sampleRate` and `channels`. Leaving both
// out keeps Cloudflare's format (pcm: 48 kHz stereo), so a Cloudflare request means exactly what it means
// there. G.711 is defined at 8 kHz mono only.

const G711 = new Set(["pcmu", "pcma"]);

export interface FormatFields {
  sampleRate?: unknown;
  channels?: unknown;
}

/**
 * The format an item asks for; `codec` has already been checked to be "pcm", "pcmu" or "pcma" by the
 * caller. Invalid combinations → 406 invalid_params naming the field.
 */
export function adapterAudioFormat(
  codec: "pcm" | "pcmu" | "pcma",
  fields: FormatFields,
  i: number,
  codecField: "inputCodec" | "outputCodec",
): AdapterAudioFormat {
  const g711 = G711.has(codec);
  const rate = fields.sampleRate ?? (g711 ? 8000 : SAMPLE_RATE);
  const channels = fields.channels ?? (g711 ? 1 : 2);
  if (g711) {
    if (rate !== 8000 || channels !== 1)
      throw new ApiError(
        "invalid_params",
        `tracks[${i}]: ${codecField} "${codec}" is G.711, 8000 Hz mono only (got sampleRate ${JSON.stringify(rate)}, channels ${JSON.stringify(channels)})`,
      );
    return { encoding: codec, sampleRate: 8000, channels: 1 };
  }
  if (typeof rate !== "number" || !(PCM_RATES as readonly number[]).includes(rate))
    throw new ApiError(
      "invalid_params",
      `tracks[${i}].sampleRate must be one of ${PCM_RATES.join(", ")}, got ${JSON.stringify(rate)}`,
    );
  if (channels !== 1 && channels !== 2)
    throw new ApiError(
      "invalid_params",
      `tracks[${i}].channels must be 1 or 2, got ${JSON.stringify(channels)}`,
    );
  return { encoding: "pcm", sampleRate: rate, channels };
}

export function isAudioCodec(codec: string | undefined): codec is "pcm" | "pcmu" | "pcma" {
  return codec === "pcm" || codec === "pcmu" || codec === "pcma";
}
