// Offline text-to-speech for the `tts` example: eSpeak NG compiled to WebAssembly (the `espeak-ng` npm
// package; voices and dictionaries are embedded in its .wasm, nothing is downloaded at run time). Its output,
// 22 050 Hz mono s16 WAV, is converted to the wire format (48 kHz stereo s16) with the windowed-sinc
// resampler.
//
// Synthesis is CPU-bound and synchronous inside the WebAssembly module (~100 ms for a sentence, ~1 s for a
// page), so the server runs it on a worker thread (see worker-client.ts); this module is what that worker
// calls. It is also usable directly (tests, scripts).

import { readFile } from "node:fs/promises";
import ESpeakNg from "espeak-ng";
import wavefile from "wavefile";
import { float32ToInt16, int16ToFloat32, monoToStereo, resample } from "../media/resample.ts";

const { WaveFile } = wavefile;

export const DEFAULT_VOICE = "en-us";
export const DEFAULT_WORDS_PER_MINUTE = 165;
/** Longest text accepted (about a minute of speech). */
export const MAX_TEXT_CHARS = 1000;
/** eSpeak voice names: language[-region][+variant], e.g. `en-us`, `de`, `en-gb+f3`. */
export const VOICE_PATTERN = /^[a-z]{2,3}(?:[-_][a-z0-9]{1,8}){0,3}(?:\+[a-z0-9]{1,12})?$/i;

export interface SpeechOptions {
  voice?: string;
  /** Speaking rate, 80–450 (eSpeak's -s). */
  wordsPerMinute?: number;
}

export class SpeechError extends Error {
  override name = "SpeechError";
}

/** Checks the options without synthesizing; returns a reason when they are unusable. */
export function checkSpeechOptions(text: string, opts: SpeechOptions): string | undefined {
  if (text.length > MAX_TEXT_CHARS) return `text longer than ${MAX_TEXT_CHARS} characters`;
  const voice = opts.voice ?? DEFAULT_VOICE;
  if (voice.length > 40 || !VOICE_PATTERN.test(voice)) return `bad voice name ${JSON.stringify(voice)}`;
  const wpm = opts.wordsPerMinute ?? DEFAULT_WORDS_PER_MINUTE;
  if (!Number.isInteger(wpm) || wpm < 80 || wpm > 450) return "words per minute must be an integer in 80–450";
  return undefined;
}

let compiled: Promise<WebAssembly.Module> | undefined;

/** The eSpeak module is 18 MB; compiling it once per process and instantiating per call saves ~30 ms. */
function espeakWasm(): Promise<WebAssembly.Module> {
  compiled ??= (async () => {
    const js = new URL(import.meta.resolve("espeak-ng"));
    const wasm = new URL("espeak-ng.wasm", js);
    return WebAssembly.compile(await readFile(wasm));
  })();
  compiled.catch(() => {
    compiled = undefined;
  });
  return compiled;
}

/** Runs the eSpeak command line on `text` and returns its WAV file (22 050 Hz mono s16). */
export async function espeakWav(text: string, opts: SpeechOptions = {}): Promise<Uint8Array> {
  const problem = checkSpeechOptions(text, opts);
  if (problem) throw new SpeechError(problem);
  const module = await espeakWasm();
  const errors: string[] = [];
  // The text goes through a file (-f), never through argv, so it cannot be read as an option.
  const options = {
    arguments: [
      "-b",
      "1", // input is UTF-8
      "-v",
      opts.voice ?? DEFAULT_VOICE,
      "-s",
      String(opts.wordsPerMinute ?? DEFAULT_WORDS_PER_MINUTE),
      "-w",
      "/out.wav",
      "-f",
      "/in.txt",
    ],
    print: () => {},
    printErr: (line: string) => errors.push(line),
    preRun: [
      () =>
        (options as unknown as { FS: { writeFile(p: string, d: string): void } }).FS.writeFile(
          "/in.txt",
          text,
        ),
    ],
    instantiateWasm(
      imports: WebAssembly.Imports,
      done: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ) {
      WebAssembly.instantiate(module, imports).then(
        (instance) => done(instance, module),
        (err: unknown) => errors.push(String(err)),
      );
      return {};
    },
  };
  const espeak = await ESpeakNg(options);
  try {
    return espeak.FS.readFile("/out.wav");
  } catch {
    const reason = errors.find((e) => e.startsWith("Error:"))?.slice(7) ?? errors[0] ?? "no output";
    throw new SpeechError(`speech synthesis failed: ${reason}`);
  }
}

/** Decodes a 16-bit PCM WAV and converts it to 48 kHz interleaved stereo s16. */
export function wavToWirePcm(wav: Uint8Array): Int16Array {
  const file = new WaveFile(wav);
  const fmt = file.fmt as {
    numChannels: number;
    sampleRate: number;
    bitsPerSample: number;
    audioFormat: number;
  };
  if (fmt.audioFormat !== 1 || fmt.bitsPerSample !== 16) {
    throw new SpeechError(
      `expected 16-bit PCM WAV, got format ${fmt.audioFormat} / ${fmt.bitsPerSample} bits`,
    );
  }
  if (fmt.numChannels !== 1 && fmt.numChannels !== 2) {
    throw new SpeechError(`expected a mono or stereo WAV, got ${fmt.numChannels} channels`);
  }
  const samples = file.getSamples(true, Int16Array) as unknown as Int16Array;
  const resampled = float32ToInt16(
    resample(int16ToFloat32(samples), fmt.numChannels, fmt.sampleRate, 48_000),
  );
  return fmt.numChannels === 1 ? monoToStereo(resampled) : resampled;
}

/** Text → 48 kHz stereo s16 speech. Empty or whitespace-only text gives a few ms of silence. */
export async function synthesizeSpeech(text: string, opts: SpeechOptions = {}): Promise<Int16Array> {
  return wavToWirePcm(await espeakWav(text, opts));
}
