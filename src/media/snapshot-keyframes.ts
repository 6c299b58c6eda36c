// SnapshotKeyframes: when a video-to-JPEG adapter asks the publisher for a keyframe. Sans-IO: it is told the
// time, the packets and the images, and answers whether to send a request now.
//
// A decoder that joins a stream mid-way can do nothing until a keyframe, and browsers send one only when
// asked (or every few minutes), so the adapter asks at once. Until the first image it asks again every
// `retryMs` while packets arrive (the first request can be lost, or the keyframe can be). After that the
// decoder runs on the stream's own frames; it is asked again only when packets keep coming but no image has
// come out for `stallMs` (lost packets left the decoder without a reference), then every `retryMs`.
// Requests go through the track, whose KeyframeRequester coalesces them with every other subscriber's.

export interface SnapshotKeyframesOptions {
  /** Between repeated requests while no image comes. Default 1000 ms. */
  retryMs?: number;
  /** Packets arriving but no image for this long means the decoder is stuck. Default 3000 ms. */
  stallMs?: number;
}

export class SnapshotKeyframes {
  readonly retryMs: number;
  readonly stallMs: number;
  /** Requests answered true. */
  requests = 0;
  #lastPacketMs = Number.NEGATIVE_INFINITY;
  #lastImageMs = Number.NEGATIVE_INFINITY;
  #lastRequestMs = Number.NEGATIVE_INFINITY;
  #images = 0;
  #startMs: number;

  constructor(nowMs: number, options: SnapshotKeyframesOptions = {}) {
    this.retryMs = options.retryMs ?? 1000;
    this.stallMs = options.stallMs ?? 3000;
    if (!(this.retryMs > 0) || !(this.stallMs > 0))
      throw new RangeError(`retryMs and stallMs must be > 0, got ${this.retryMs}, ${this.stallMs}`);
    this.#startMs = nowMs;
  }

  onPacket(nowMs: number): void {
    this.#lastPacketMs = nowMs;
  }

  onImage(nowMs: number): void {
    this.#images++;
    this.#lastImageMs = nowMs;
  }

  /** True when a keyframe request should go out now (then counted as sent). */
  poll(nowMs: number): boolean {
    // Nothing is flowing: a request could not help (a muted or paused publisher).
    if (nowMs - this.#lastPacketMs > this.retryMs) return false;
    const since = this.#images === 0 ? this.#startMs : this.#lastImageMs;
    const waitingFor = nowMs - since;
    const threshold = this.#images === 0 ? 0 : this.stallMs;
    if (waitingFor < threshold) return false;
    if (nowMs - this.#lastRequestMs < this.retryMs) return false;
    this.#lastRequestMs = nowMs;
    this.requests++;
    return true;
  }
}
