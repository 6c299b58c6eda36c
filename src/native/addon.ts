import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

/**
 * The native media plane (binding.gyp, native/), built by `npm ci` through scripts/build-native.mjs. Loading
 * fails loudly with what to do: nothing falls back silently to another implementation.
 */
export interface NativeSrtpContext {
  /** The protected packet, or null when the input is not RTP (or RTCP) or cannot be protected. */
  protectRtp(packet: Buffer): Buffer | null;
  /** The plain packet, or null when authentication, replay or parsing refused it. */
  unprotectRtp(packet: Buffer): Buffer | null;
  protectRtcp(packet: Buffer): Buffer | null;
  unprotectRtcp(packet: Buffer): Buffer | null;
  /** Protects `count` copies of one packet with consecutive sequence numbers (benchmark); returns successes. */
  protectRtpBatch(packet: Buffer, count: number, firstSeq: number): number;
  stats(): { authFailures: number; replays: number; malformed: number };
}

export interface NativeAddon {
  version: string;
  SrtpContext: new (profile: 1 | 7, masterKey: Buffer, masterSalt: Buffer) => NativeSrtpContext;
}

let cached: NativeAddon | undefined;

export function loadNative(): NativeAddon {
  if (cached) return cached;
  const path = fileURLToPath(new URL("../../build/Release/patchbay_native.node", import.meta.url));
  try {
    cached = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (err) {
    throw new Error(
      `the native media plane is not built (${path}): run \`npm ci\` or \`npm run native:build\` (needs a C++17 compiler, make and Python 3): ${(err as Error).message}`,
    );
  }
  return cached;
}
