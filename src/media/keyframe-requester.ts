// KeyframeRequester: coalesces keyframe requests (PLI/FIR) headed for one publisher. When a publisher
// drops a packet, every subscriber of the track fails to decode at about the same moment and asks for a
// keyframe; forwarding each request would make the encoder emit a burst of keyframes, each one a large
// spike of bitrate that itself causes loss. One request per layer per `minIntervalMs` is enough, because
// a single keyframe serves every subscriber of that layer.
//
// A request that arrives in the quiet period after a send is not dropped but deferred: poll() releases
// it once the interval has passed. Otherwise a subscriber that joined (or lost a packet) just after the
// keyframe was requested, and whose need is not covered by it, would wait for the encoder's periodic
// keyframe, which can be many seconds away. A keyframe that arrives meanwhile (onKeyframe) satisfies the
// deferred request, since everyone who asked before it will receive it.

export interface KeyframeRequesterOptions {
  /** At most one request per layer per this interval. Default 500 ms. */
  minIntervalMs?: number;
}

export interface KeyframeRequesterCounters {
  /** Calls to request(). */
  requested: number;
  /** Requests to send: immediate ones plus deferred ones released by poll(). */
  sent: number;
  /** Calls to request() answered false (folded into an earlier request or deferred). */
  suppressed: number;
  /** Of `sent`, those released by poll(). */
  released: number;
}

interface LayerState {
  lastSentMs: number;
  pending: boolean;
}

export class KeyframeRequester {
  readonly minIntervalMs: number;
  #layers = new Map<number, LayerState>();
  #counters: KeyframeRequesterCounters = { requested: 0, sent: 0, suppressed: 0, released: 0 };

  constructor(options: KeyframeRequesterOptions = {}) {
    const minIntervalMs = options.minIntervalMs ?? 500;
    if (!(minIntervalMs >= 0) || !Number.isFinite(minIntervalMs)) {
      throw new RangeError(`minIntervalMs must be >= 0, got ${minIntervalMs}`);
    }
    this.minIntervalMs = minIntervalMs;
  }

  get counters(): Readonly<KeyframeRequesterCounters> {
    return { ...this.#counters };
  }

  /** True if a deferred request waits for any layer. */
  get hasPending(): boolean {
    for (const state of this.#layers.values()) if (state.pending) return true;
    return false;
  }

  /** True if a deferred request waits for this layer. */
  pending(layer = 0): boolean {
    return this.#layers.get(checkLayer(layer))?.pending ?? false;
  }

  /** A subscriber wants a keyframe of `layer`. True: send a PLI/FIR for it now. False: it is taken care of. */
  request(nowMs: number, layer = 0): boolean {
    checkLayer(layer);
    this.#counters.requested++;
    const state = this.#layers.get(layer);
    if (state === undefined) {
      this.#layers.set(layer, { lastSentMs: nowMs, pending: false });
      this.#counters.sent++;
      return true;
    }
    if (nowMs - state.lastSentMs >= this.minIntervalMs) {
      state.lastSentMs = nowMs;
      state.pending = false;
      this.#counters.sent++;
      return true;
    }
    state.pending = true;
    this.#counters.suppressed++;
    return false;
  }

  /** Layers whose deferred request is due now, ascending; send one PLI/FIR for each. */
  poll(nowMs: number): number[] {
    const out: number[] = [];
    for (const [layer, state] of this.#layers) {
      if (!state.pending || nowMs - state.lastSentMs < this.minIntervalMs) continue;
      state.pending = false;
      state.lastSentMs = nowMs;
      out.push(layer);
    }
    this.#counters.sent += out.length;
    this.#counters.released += out.length;
    return out.sort((a, b) => a - b);
  }

  /**
   * A keyframe of `layer` arrived from the publisher: whoever asked before it gets it, so a deferred
   * request is satisfied. The throttle window is left alone; the encoder may still be busy with the
   * last request.
   */
  onKeyframe(layer = 0): void {
    const state = this.#layers.get(checkLayer(layer));
    if (state !== undefined) state.pending = false;
  }
}

function checkLayer(layer: number): number {
  if (!Number.isInteger(layer) || layer < 0)
    throw new RangeError(`layer must be an integer >= 0, got ${layer}`);
  return layer;
}
