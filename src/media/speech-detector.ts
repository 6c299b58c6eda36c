// SpeechDetector: start/end-of-speech events for an egress track (`speechEvents: true`), so a speech-to-text
// endpoint can skip silence. Sans-IO: 20 ms PCM frames in, transitions out.
//
// A level detector with hysteresis, not a speech classifier: what comes out of a WebRTC call is already
// echo-cancelled and noise-suppressed by the sender's browser, and decoded silence is digital zero, so the
// frame level separates talk from pauses well. Speech starts after `attackFrames` consecutive frames at or
// above `onDbfs` (a click is not speech) and ends after `hangoverFrames` below `offDbfs` (pauses between words
// stay inside the utterance). The start is dated to the first frame of the attack, the end to the last frame
// above the threshold, so an endpoint can cut exactly the speech it was told about.

export interface SpeechDetectorOptions {
  /** Level at which a frame counts as speech. Default −45 dBFS. */
  onDbfs?: number;
  /** Level below which a frame counts as silence. Default −50 dBFS. */
  offDbfs?: number;
  /** Consecutive loud frames before speech starts. Default 2 (40 ms). */
  attackFrames?: number;
  /** Consecutive quiet frames before speech ends. Default 15 (300 ms). */
  hangoverFrames?: number;
}

export interface SpeechEvent {
  state: "start" | "end";
  /** Index (0-based, counting every frame given to push()) of the first / last speech frame. */
  frame: number;
}

export class SpeechDetector {
  readonly onDbfs: number;
  readonly offDbfs: number;
  readonly attackFrames: number;
  readonly hangoverFrames: number;
  #frame = -1;
  #speaking = false;
  #loudRun = 0;
  #quietRun = 0;
  #lastLoud = -1;

  constructor(options: SpeechDetectorOptions = {}) {
    this.onDbfs = options.onDbfs ?? -45;
    this.offDbfs = options.offDbfs ?? -50;
    this.attackFrames = options.attackFrames ?? 2;
    this.hangoverFrames = options.hangoverFrames ?? 15;
    if (this.offDbfs > this.onDbfs) throw new RangeError("offDbfs must not be above onDbfs");
  }

  get speaking(): boolean {
    return this.#speaking;
  }

  /** One frame of interleaved s16 PCM; returns the transition it completes, if any. */
  push(pcm: Int16Array): SpeechEvent | undefined {
    this.#frame++;
    const dbfs = levelDbfs(pcm);
    if (dbfs >= this.onDbfs) {
      this.#loudRun++;
      this.#quietRun = 0;
      this.#lastLoud = this.#frame;
      if (!this.#speaking && this.#loudRun >= this.attackFrames) {
        this.#speaking = true;
        return { state: "start", frame: this.#frame - this.attackFrames + 1 };
      }
      return undefined;
    }
    this.#loudRun = 0;
    if (dbfs < this.offDbfs) this.#quietRun++;
    if (this.#speaking && this.#quietRun >= this.hangoverFrames) {
      this.#speaking = false;
      return { state: "end", frame: this.#lastLoud };
    }
    return undefined;
  }
}

function levelDbfs(pcm: Int16Array): number {
  if (pcm.length === 0) return Number.NEGATIVE_INFINITY;
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
  const rms = Math.sqrt(sum / pcm.length);
  return rms > 0 ? 20 * Math.log10(rms / 32768) : Number.NEGATIVE_INFINITY;
}
