// Live level meters: one AudioContext, one AnalyserNode per stream, one animation loop for all meters.
import { h } from "./dom.js";

/** @type {AudioContext | null} */
let ctx = null;

/** The page's AudioContext, created and resumed on first use (call it from a click handler once). */
export function audioContext() {
  ctx ??= new AudioContext({ latencyHint: "interactive" });
  if (ctx.state === "suspended") ctx.resume().catch(() => {});
  return ctx;
}

const FLOOR_DB = -60;
/** Below this the input is as good as silent (a real microphone's noise floor is well above it). */
export const SOUND_DB = -70;
/** @type {Set<Meter>} */
const meters = new Set();
let frame = 0;

function loop() {
  for (const m of meters) m.sample();
  frame = meters.size > 0 ? requestAnimationFrame(loop) : 0;
}

/** The markup of a meter (styled by .meter in console.css). */
export function meterElement(label) {
  return h(
    "div",
    {
      class: "meter",
      role: "meter",
      "aria-label": label,
      "aria-valuemin": "0",
      "aria-valuemax": "1",
      "aria-valuenow": "0",
    },
    h(
      "span",
      { class: "meter-track" },
      h("span", { class: "meter-fill" }),
      h("span", { class: "meter-peak" }),
    ),
    h("span", { class: "meter-db" }, "–∞ dB"),
  );
}

export class Meter {
  /**
   * @param {MediaStream} stream
   * @param {HTMLElement} el from meterElement()
   */
  constructor(stream, el) {
    const ac = audioContext();
    this.el = el;
    this.dbLabel = el.querySelector(".meter-db");
    this.source = ac.createMediaStreamSource(stream);
    this.analyser = ac.createAnalyser();
    this.analyser.fftSize = 2048;
    this.source.connect(this.analyser);
    this.buffer = new Float32Array(this.analyser.fftSize);
    /** Displayed level 0..1 (fast attack, slow release). */
    this.level = 0;
    this.peak = 0;
    this.peakAt = 0;
    /** Highest level seen since creation (0..1), for tests and the "heard something" hint. */
    this.max = 0;
    this.lastDb = Number.NEGATIVE_INFINITY;
    this.createdAt = performance.now();
    /** When the input was last above SOUND_DB (performance.now()); 0: never. */
    this.lastSoundAt = 0;
    meters.add(this);
    if (!frame) frame = requestAnimationFrame(loop);
  }

  sample() {
    this.analyser.getFloatTimeDomainData(this.buffer);
    let sum = 0;
    for (const v of this.buffer) sum += v * v;
    const rms = Math.sqrt(sum / this.buffer.length);
    const db = rms > 0 ? 20 * Math.log10(rms) : Number.NEGATIVE_INFINITY;
    const target = Math.min(1, Math.max(0, (db - FLOOR_DB) / -FLOOR_DB));
    this.level = target > this.level ? target : this.level + (target - this.level) * 0.12;
    const now = performance.now();
    if (target >= this.peak || now - this.peakAt > 1200) {
      this.peak = target;
      this.peakAt = now;
    }
    this.max = Math.max(this.max, target);
    this.lastDb = db;
    if (db > SOUND_DB) this.lastSoundAt = now;
    this.el.style.setProperty("--level", this.level.toFixed(3));
    this.el.style.setProperty("--peak", this.peak.toFixed(3));
    this.el.setAttribute("aria-valuenow", this.level.toFixed(2));
    if (this.dbLabel) {
      // The label follows the bar (smoothed), not the last raw block, so the two never disagree.
      const text = this.level > 0.005 ? `${Math.round(this.level * -FLOOR_DB + FLOOR_DB)} dB` : "–∞ dB";
      if (this.dbLabel.textContent !== text) this.dbLabel.textContent = text;
    }
  }

  /** Milliseconds the input has been (as good as) silent, 0 while it sounds. */
  silentForMs(now = performance.now()) {
    return this.lastSoundAt >= now - 250 ? 0 : now - Math.max(this.lastSoundAt, this.createdAt);
  }

  destroy() {
    meters.delete(this);
    try {
      this.source.disconnect();
    } catch {
      // already disconnected
    }
    this.el.style.setProperty("--level", "0");
    this.el.style.setProperty("--peak", "0");
    this.el.setAttribute("aria-valuenow", "0");
    if (this.dbLabel) this.dbLabel.textContent = "–∞ dB";
  }
}
