// Per-subscriber RTP sequence number / timestamp rewriting for a forwarded (possibly simulcast) track.
//
// What a subscriber must see is one ordinary RTP stream: sequence numbers that only have holes where
// packets were really lost (a hole makes the receiver NACK and count loss), and timestamps on one
// clock. The source gives neither once the SFU drops packets (padding, packets of other temporal
// layers) or switches between simulcast layers, each of which has its own sequence and timestamp space.
//
// Model: within one layer "epoch" (from a switch to the next) the output number of an input packet is
// input - offset, computed on extended (unwrapped) numbers, and the offset grows by one for each
// dropped packet. A late packet must use the offset that was current at its own position, not the
// current one, so the offset is remembered per input number for a window of WINDOW numbers (this is
// also the record of which numbers were dropped). Sequence gaps (real loss upstream) keep their output
// numbers reserved, so a late arrival still fills its hole.
//
// Like LiveKit's rtpmunger, a packet dropped after later ones were already sent cannot take its
// number back: its output slot stays a hole.

import { seqDiff, tsAdd } from "./rtp.ts";

/** How far back (in input sequence numbers) late packets and drops are remembered. */
const WINDOW = 2048;
/** How many recent outputs `toSource` can answer for (NACKs older than that are useless anyway). */
const HISTORY = 1024;

const SLOT_EMPTY = 0;
/** Forwarded, or a gap still waiting for its packet: either way the slot owns an output number. */
const SLOT_NUMBERED = 1;
const SLOT_DROPPED = 2;

export interface RtpMungerOptions {
  /** First output sequence number; random by default so each subscriber looks like a fresh stream. */
  initialSequence?: number;
  /** First output timestamp; random by default. */
  initialTimestamp?: number;
  /** RTP clock rate of the codec (Hz), for timestamp continuity across layer switches. */
  clockRate: number;
}

export interface RtpMungerInput {
  sequenceNumber: number;
  timestamp: number;
  /** Which source stream (e.g. simulcast layer / SSRC index) the packet belongs to. */
  layer: number;
  /** Arrival time, used only to advance the timestamp across a layer switch. */
  nowMs: number;
  /** The caller will not send this packet; its number must not leave a hole in the output. */
  dropped?: boolean;
}

export interface SeqTs {
  sequenceNumber: number;
  timestamp: number;
}

export class RtpMunger {
  readonly clockRate: number;
  readonly #initialTimestamp: number;

  #layer: number | undefined;
  #highestIn = 0;
  /** Extended input minus extended output, for the next in-order packet. */
  #seqOffset = 0;
  #tsOffset = 0;
  // Per input number (mod WINDOW): which extended number the slot is for, its state, its offset.
  // Recording the full number is what bounds the window: an older packet finds its slot reused. And
  // the slots are cleared at every switch, which is what refuses packets from before it.
  readonly #slotSeq = new Float64Array(WINDOW);
  readonly #slotState = new Uint8Array(WINDOW);
  readonly #slotOffset = new Float64Array(WINDOW);
  /** Highest input number of each layer we switched away from, to refuse its stragglers. */
  readonly #leftLayers = new Map<number, number>();

  /** Extended output number of the newest packet sent (initialSequence - 1 before any). */
  #lastOut: number;
  #lastOutTs = 0;
  #lastOutMs = 0;
  #hasOutput = false;

  // Output number (mod HISTORY) -> source, for NACKs.
  readonly #histOut = new Float64Array(HISTORY).fill(-1);
  readonly #histSeq = new Uint16Array(HISTORY);
  readonly #histLayer = new Float64Array(HISTORY);

  constructor(options: RtpMungerOptions) {
    if (!(options.clockRate > 0))
      throw new RangeError(`clockRate must be positive, got ${options.clockRate}`);
    this.clockRate = options.clockRate;
    const seq = options.initialSequence ?? Math.floor(Math.random() * 0x10000);
    this.#initialTimestamp = (options.initialTimestamp ?? Math.floor(Math.random() * 0x1_0000_0000)) >>> 0;
    // Offset by 2^16 so the extended output number stays positive, which keeps the NACK history's
    // "never written" marker (-1) unambiguous.
    this.#lastOut = 0x10000 + (seq & 0xffff) - 1;
  }

  /** The current layer, undefined before the first packet. */
  get layer(): number | undefined {
    return this.#layer;
  }

  /** The newest packet sent (for RTCP sender reports); undefined before the first one. */
  get lastOutput(): SeqTs | undefined {
    return this.#hasOutput
      ? { sequenceNumber: this.#lastOut & 0xffff, timestamp: this.#lastOutTs }
      : undefined;
  }

  /**
   * Output sequence number and timestamp for a packet, or undefined when it must not be sent: it is
   * marked dropped, a duplicate of a dropped packet, too old, or a straggler of a layer left behind.
   */
  map(input: RtpMungerInput): SeqTs | undefined {
    const seq = input.sequenceNumber & 0xffff;
    if (this.#layer !== input.layer) {
      if (this.#layer !== undefined) {
        const left = this.#leftLayers.get(input.layer);
        // A layer we left is only re-entered with a packet newer than anything seen on it; older
        // ones are in-flight stragglers whose numbers the new layer has already taken over. Past
        // the window a number that looks older has more likely wrapped while we were away.
        const sinceLeft = left === undefined ? 1 : seqDiff(seq, left);
        if (sinceLeft <= 0 && sinceLeft > -WINDOW) return undefined;
        // A dropped packet is no switch point: there is nothing to anchor the new offsets to.
        if (input.dropped) return undefined;
        this.#leftLayers.set(this.#layer, this.#highestIn & 0xffff);
      }
      this.#startEpoch(seq, input);
    }

    const ext = this.#highestIn + seqDiff(seq, this.#highestIn & 0xffff);
    if (ext > this.#highestIn) return this.#inOrder(ext, input);
    return this.#late(ext, input);
  }

  /** The source packet behind a recent output sequence number, to answer a NACK. */
  toSource(outputSeq: number): { sequenceNumber: number; layer: number } | undefined {
    const ext = this.#lastOut + seqDiff(outputSeq & 0xffff, this.#lastOut & 0xffff);
    if (ext > this.#lastOut || this.#lastOut - ext >= HISTORY) return undefined;
    const i = ext & (HISTORY - 1);
    if (this.#histOut[i] !== ext) return undefined;
    return { sequenceNumber: this.#histSeq[i], layer: this.#histLayer[i] };
  }

  #startEpoch(seq: number, input: RtpMungerInput): void {
    this.#leftLayers.delete(input.layer);
    this.#layer = input.layer;
    this.#slotState.fill(SLOT_EMPTY);
    // Start at 2^16 for the same reason as #lastOut: slots keyed by non-negative numbers only.
    const ext = 0x10000 + seq;
    this.#highestIn = ext - 1;
    this.#seqOffset = ext - (this.#lastOut + 1);
    let ts = this.#initialTimestamp;
    if (this.#hasOutput) {
      // The receiver's jitter buffer and A/V sync read the timestamp as media time, so it advances
      // by the wall-clock time that passed; never by zero, which would merge two frames into one.
      const elapsed = Math.round(((input.nowMs - this.#lastOutMs) * this.clockRate) / 1000);
      ts = tsAdd(this.#lastOutTs, Math.max(1, elapsed));
    }
    this.#tsOffset = (input.timestamp - ts) >>> 0;
  }

  #inOrder(ext: number, input: RtpMungerInput): SeqTs | undefined {
    // Numbers skipped by this jump were lost upstream (or are merely late): they keep their output
    // numbers. Only the last WINDOW of them can still arrive in time to matter.
    for (let n = Math.max(this.#highestIn + 1, ext - WINDOW + 1); n < ext; n++) {
      this.#setSlot(n, SLOT_NUMBERED, this.#seqOffset);
    }
    this.#highestIn = ext;
    if (input.dropped) {
      this.#setSlot(ext, SLOT_DROPPED, this.#seqOffset);
      this.#seqOffset++;
      return undefined;
    }
    this.#setSlot(ext, SLOT_NUMBERED, this.#seqOffset);
    const out = ext - this.#seqOffset;
    const ts = (input.timestamp - this.#tsOffset) >>> 0;
    this.#lastOut = out;
    this.#lastOutTs = ts;
    this.#lastOutMs = input.nowMs;
    this.#hasOutput = true;
    this.#remember(out, input);
    return { sequenceNumber: out & 0xffff, timestamp: ts };
  }

  #late(ext: number, input: RtpMungerInput): SeqTs | undefined {
    if (input.dropped) return undefined;
    const i = ext & (WINDOW - 1);
    if (this.#slotState[i] !== SLOT_NUMBERED || this.#slotSeq[i] !== ext) return undefined;
    const out = ext - this.#slotOffset[i];
    this.#remember(out, input);
    return { sequenceNumber: out & 0xffff, timestamp: (input.timestamp - this.#tsOffset) >>> 0 };
  }

  #setSlot(ext: number, state: number, offset: number): void {
    const i = ext & (WINDOW - 1);
    this.#slotSeq[i] = ext;
    this.#slotState[i] = state;
    this.#slotOffset[i] = offset;
  }

  #remember(out: number, input: RtpMungerInput): void {
    const i = out & (HISTORY - 1);
    this.#histOut[i] = out;
    this.#histSeq[i] = input.sequenceNumber & 0xffff;
    this.#histLayer[i] = input.layer;
  }
}
