import type { RTCDtlsTransport } from "werift";

/** At most this many DTLS records are held per transport (a ClientHello flight is 1–2). */
const MAX_EARLY = 16;

/** RFC 7983 demultiplexing: DTLS records start with 20–63. */
function isDtlsRecord(buf: Buffer): boolean {
  return buf.length > 0 && buf[0] > 19 && buf[0] < 64;
}

/**
 * Keeps DTLS records that arrive before werift's DTLS endpoint exists and replays them once it does.
 *
 * As an ICE-lite agent werift starts DTLS only when the client nominates a pair (USE-CANDIDATE). RFC 8445
 * full agents may send on a pair as soon as its check succeeds: libjuice (libdatachannel) sends its DTLS
 * ClientHello right after the first successful check and one packet before the nominating check. werift
 * drops that ClientHello and the handshake waits for the client's 1 s retransmission timer. Call before
 * the transport starts.
 */
export function replayEarlyDtls(transport: RTCDtlsTransport): void {
  if (transport.state !== "new") return;
  const connection = transport.iceTransport.connection;
  const early: Buffer[] = [];
  const data = connection.onData.subscribe((buf) => {
    if (transport.dtls || !isDtlsRecord(buf) || early.length >= MAX_EARLY) return;
    early.push(buf);
  });
  const state = transport.onStateChange.subscribe((s) => {
    if (s === "new") return;
    state.unSubscribe();
    data.unSubscribe();
    if (s !== "connecting" || early.length === 0) return;
    // `start()` creates the DTLS endpoint synchronously right after announcing "connecting".
    queueMicrotask(() => {
      for (const buf of early.splice(0)) connection.onData.execute(buf);
    });
  });
}
