import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { SpeechDetector, type SpeechEvent } from "../../src/media/speech-detector.ts";
import { concatPcm, silence, sine, speechLike } from "../helpers/signals.ts";

/** Cuts PCM into 20 ms frames (1920 interleaved values) and runs the detector over them. */
function events(pcm: Int16Array, d = new SpeechDetector()): SpeechEvent[] {
  const out: SpeechEvent[] = [];
  for (let i = 0; i + 1920 <= pcm.length; i += 1920) {
    const e = d.push(pcm.subarray(i, i + 1920));
    if (e) out.push(e);
  }
  return out;
}

describe("SpeechDetector", () => {
  test("silence, 1 s of tone, silence: start at the tone's first frame, end at its last", () => {
    const pcm = concatPcm(silence(400), sine(300, 1000, 0.3), silence(1000));
    assert.deepEqual(events(pcm), [
      { state: "start", frame: 20 },
      { state: "end", frame: 69 },
    ]);
  });

  test("a 20 ms click is not speech (attack); a 200 ms pause inside speech does not end it (hangover)", () => {
    const pcm = concatPcm(
      silence(200),
      sine(1000, 20, 0.5),
      silence(500),
      sine(300, 500, 0.3),
      silence(200),
      sine(300, 500, 0.3),
      silence(1000),
    );
    assert.deepEqual(events(pcm), [
      { state: "start", frame: 36 },
      { state: "end", frame: 95 },
    ]);
  });

  test("speech-like audio with syllables is one utterance per talk-spurt, not one per syllable", () => {
    const pcm = concatPcm(
      speechLike(2000, { seed: 3 }),
      silence(1000),
      speechLike(1500, { seed: 4 }),
      silence(600),
    );
    const e = events(pcm);
    assert.deepEqual(
      e.map((x) => x.state),
      ["start", "end", "start", "end"],
      JSON.stringify(e),
    );
    assert.ok(e[1].frame < 100 && e[2].frame >= 150, JSON.stringify(e));
  });

  test("thresholds must not cross", () => {
    assert.throws(() => new SpeechDetector({ onDbfs: -50, offDbfs: -40 }), RangeError);
  });
});
