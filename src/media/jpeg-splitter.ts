// JpegSplitter: cuts a byte stream of concatenated baseline JPEG images (what a decoder writes to a pipe, in
// chunks of any size) into whole images, without decoding them. It walks the marker segments (ITU T.81
// Annex B): SOI, then length-prefixed segments up to SOS, then entropy-coded data in which 0xFF is always
// followed by 0x00 (stuffing) or a restart marker RST0–7, until EOI. A stray 0xFFD9 can therefore not end an
// image early, and bytes before an SOI (noise, a truncated image) are skipped and counted.

const SOI = 0xd8;
const EOI = 0xd9;
const SOS = 0xda;

export interface JpegSplitterOptions {
  /** An image larger than this is dropped (and counted) instead of buffered without bound. Default 16 MiB. */
  maxImageBytes?: number;
}

export class JpegSplitter {
  readonly maxImageBytes: number;
  /** Bytes discarded: before an SOI, or of an image over the limit. */
  skippedBytes = 0;
  /** Images dropped for being over the limit. */
  oversizeImages = 0;
  #buf: Buffer = Buffer.alloc(0);
  /** Offset of the current image's SOI in #buf, or -1 while looking for one. */
  #start = -1;
  /** Where parsing resumes. */
  #pos = 0;
  /** Inside the entropy-coded data of the current image (after SOS). */
  #scan = false;

  constructor(options: JpegSplitterOptions = {}) {
    this.maxImageBytes = options.maxImageBytes ?? 16 * 1024 * 1024;
  }

  /** Feeds bytes; returns the images they completed, in order. */
  push(chunk: Uint8Array): Buffer[] {
    this.#buf = this.#buf.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.#buf, chunk]);
    const out: Buffer[] = [];
    for (;;) {
      if (this.#start < 0 && !this.#findStart()) break;
      const end = this.#findEnd();
      if (end < 0) {
        if (this.#buf.length - this.#start > this.maxImageBytes) this.#dropOversize();
        break;
      }
      out.push(Buffer.from(this.#buf.subarray(this.#start, end)));
      this.#consume(end);
    }
    return out;
  }

  /** Looks for FF D8; discards what precedes it. False when the buffer holds none yet. */
  #findStart(): boolean {
    const b = this.#buf;
    for (let i = 0; i + 1 < b.length; i++) {
      if (b[i] === 0xff && b[i + 1] === SOI) {
        this.skippedBytes += i;
        this.#buf = b.subarray(i);
        this.#start = 0;
        this.#pos = 2;
        this.#scan = false;
        return true;
      }
    }
    // Keep a trailing 0xFF: it may be the first half of an SOI.
    const keep = b.length > 0 && b[b.length - 1] === 0xff ? 1 : 0;
    this.skippedBytes += b.length - keep;
    this.#buf = b.subarray(b.length - keep);
    return false;
  }

  /** The offset just past the current image's EOI, or -1 if it is not complete yet. */
  #findEnd(): number {
    const b = this.#buf;
    let i = this.#pos;
    for (;;) {
      if (this.#scan) {
        // Entropy-coded data: only FF 00 and FF D0–D7 may appear; any other marker ends the scan.
        while (i + 1 < b.length) {
          if (b[i] !== 0xff) {
            i++;
            continue;
          }
          const m = b[i + 1];
          if (m === 0x00 || (m >= 0xd0 && m <= 0xd7) || m === 0xff) {
            i += m === 0xff ? 1 : 2;
            continue;
          }
          this.#scan = false;
          break;
        }
        if (this.#scan) {
          this.#pos = i;
          return -1;
        }
      }
      if (i + 1 >= b.length) {
        this.#pos = i;
        return -1;
      }
      if (b[i] !== 0xff) {
        // Not a marker where one must be: the image is corrupt. Resynchronize on the next SOI.
        this.skippedBytes += i;
        this.#consume(i);
        return this.#start < 0 && this.#findStart() ? this.#findEnd() : -1;
      }
      const m = b[i + 1];
      if (m === 0xff) {
        i++; // fill byte
        continue;
      }
      if (m === EOI) return i + 2;
      if (m === SOI) {
        // A new image starts inside this one: this one was truncated. Drop it and restart there.
        this.skippedBytes += i;
        this.#consume(i);
        return this.#findStart() ? this.#findEnd() : -1;
      }
      if ((m >= 0xd0 && m <= 0xd7) || m === 0x01) {
        i += 2; // markers without a length
        continue;
      }
      if (i + 3 >= b.length) {
        this.#pos = i;
        return -1;
      }
      const len = b.readUInt16BE(i + 2);
      if (len < 2) {
        this.skippedBytes += i + 2;
        this.#consume(i + 2);
        return this.#start < 0 && this.#findStart() ? this.#findEnd() : -1;
      }
      i += 2 + len;
      if (m === SOS) this.#scan = true;
      if (i > b.length) {
        // The segment is not all here yet: resume at its end once it is.
        this.#pos = i;
        return -1;
      }
    }
  }

  #consume(end: number): void {
    this.#buf = this.#buf.subarray(end);
    this.#start = -1;
    this.#pos = 0;
    this.#scan = false;
  }

  #dropOversize(): void {
    this.oversizeImages++;
    this.skippedBytes += this.#buf.length;
    this.#buf = Buffer.alloc(0);
    this.#start = -1;
    this.#pos = 0;
    this.#scan = false;
  }
}
