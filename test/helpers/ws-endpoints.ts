import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";
import { encodePacket } from "../../src/adapters/websocket/packet-codec.ts";
import { toBytes } from "./signals.ts";

/** A WebSocket endpoint on loopback that the server dials. `onConnection` scripts its behaviour. */
export interface Endpoint {
  url: string;
  connections: WebSocket[];
  /** Resolves with the next connection. */
  nextConnection(): Promise<WebSocket>;
  close(): Promise<void>;
}

export async function startEndpoint(
  onConnection: (ws: WebSocket) => void = () => {},
  path = "/tts?token=abc",
): Promise<Endpoint> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((r) => wss.once("listening", () => r()));
  const connections: WebSocket[] = [];
  let waiters: ((ws: WebSocket) => void)[] = [];
  wss.on("connection", (ws) => {
    connections.push(ws);
    ws.on("error", () => {});
    onConnection(ws);
    const w = waiters;
    waiters = [];
    for (const fn of w) fn(ws);
  });
  const { port } = wss.address() as AddressInfo;
  return {
    url: `ws://127.0.0.1:${port}${path}`,
    connections,
    nextConnection: () => new Promise((r) => waiters.push(r)),
    close: () =>
      new Promise((resolve) => {
        for (const c of connections) c.terminate();
        wss.close(() => resolve());
      }),
  };
}

/** Split PCM bytes into `Packet` messages of `chunkBytes` payload each (unaligned on purpose). */
export function chunkPackets(pcm: Int16Array, chunkBytes: number): Uint8Array[] {
  const bytes = toBytes(pcm);
  const out: Uint8Array[] = [];
  let seq = 0;
  for (let off = 0; off < bytes.length; off += chunkBytes) {
    out.push(
      encodePacket({ sequenceNumber: seq++, timestamp: 0, payload: bytes.subarray(off, off + chunkBytes) }),
    );
  }
  return out;
}

export const EMPTY_PACKET = encodePacket({ sequenceNumber: 0, timestamp: 0, payload: new Uint8Array(0) });

/** Behaves like Cloudflare's TTS example: the whole clip as fast as possible in 16 KiB chunks, then an empty packet. */
export function ttsBurst(pcm: Int16Array, chunkBytes = 16 * 1024): (ws: WebSocket) => void {
  return (ws) => {
    for (const m of chunkPackets(pcm, chunkBytes)) ws.send(m);
    ws.send(EMPTY_PACKET);
  };
}
