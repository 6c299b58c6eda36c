// Two addon peers over real UDP on loopback, for tests of what rides on DTLS application data: a server
// peer (ICE-lite, DTLS server) and a client-mode peer (controlling ICE, DTLS client).
import { loadNative, type NativePeer, type NativePeerState } from "../../src/native/addon.ts";

export const native = loadNative();
export const FINGERPRINT = native.certificateFingerprint();

export interface Side {
  peer: NativePeer;
  port: number;
  /** Application-data records received (unless onRecord takes them). */
  records: Buffer[];
  onRecord?: (record: Buffer) => void;
  other: number;
  states: NativePeerState[];
  close(): void;
}

export function side(ufrag: string, pwd: string): Side {
  const socket = new native.UdpSocket();
  // Batched mode (4 MiB socket buffers): both peers share this process, so a burst one sends is read only
  // after it yields; with the default 208 KiB buffer a 100-record burst overflows it.
  const port = socket.bind("127.0.0.1", 0, true);
  const s: Side = {
    peer: undefined as unknown as NativePeer,
    port,
    records: [],
    other: 0,
    states: [],
    close() {
      s.peer.close();
      socket.close();
    },
  };
  s.peer = new native.Peer(
    socket,
    ufrag,
    pwd,
    (batch, count) => {
      let at = 0;
      for (let i = 0; i < count; i++) {
        const len = batch.readUInt16BE(at);
        const kind = batch[at + 2];
        if (kind === 2) {
          const record = Buffer.from(batch.subarray(at + 4, at + 4 + len));
          if (s.onRecord) s.onRecord(record);
          else s.records.push(record);
        } else s.other++;
        at += 4 + len;
      }
    },
    (state) => s.states.push(state),
  );
  return s;
}

export async function until(what: string, ok: () => boolean, tick: () => void, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    tick();
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Connects a server and a client side (DTLS up on both); the returned tick drives both peers' timers. */
export async function connectPair(server: Side, client: Side): Promise<() => void> {
  server.peer.setRemote("cliU", [["sha-256", FINGERPRINT]], false);
  client.peer.setRemote("srvU", [["sha-256", FINGERPRINT]], true, {
    ip: "127.0.0.1",
    port: server.port,
    pwd: "server-password-0123456789",
  });
  const tick = () => {
    client.peer.tick();
    server.peer.tick();
  };
  await until(
    "both connected",
    () => server.states.includes("connected") && client.states.includes("connected"),
    tick,
  );
  return tick;
}
