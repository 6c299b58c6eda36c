// The `echo` example: what an egress adapter sends to `/echo/in?room=R` goes back out to the ingest
// adapters connected to `/echo/out?room=R`, so a user hears their own voice after a trip through both
// adapters (WebRTC → PCM over WebSocket → WebRTC).
//
//   egress adapter (location "remote")  ──dials──▶  /echo/in?room=R   (receives frames)
//   ingest adapter (location "local")   ──dials──▶  /echo/out?room=R  (frames are sent to it)
//
// Frames are forwarded as they arrive: the egress adapter delivers them in real time and the ingest adapter
// paces its playout, so no pacing is needed here. Buffers are bounded: while no `out` is connected the room
// keeps only the latest `bufferMs` of audio (sent first when one connects), and an `out` whose socket has
// more than `bufferMs` unsent drops frames (counted) instead of growing. When the last `in` of a room leaves,
// every `out` gets an empty Packet (end of segment: the ingest adapter flushes its partial frame).
// Several `in`s in one room are forwarded interleaved (not mixed): use one per room.

import type { WebSocket } from "ws";
import { BYTES_PER_MS, decodePacket, encodePacket } from "../client/endpoint.ts";
import { type Example, type ExampleLogger, messageBytes, type Refusal } from "./host.ts";

const ROOM_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/;

export interface EchoOptions {
  logger: ExampleLogger;
  /** Audio kept while no `out` is connected, and the most an `out` socket may have unsent. Default 1000 ms. */
  bufferMs?: number;
  /** Rooms at once. Default 256. */
  maxRooms?: number;
}

interface Room {
  ins: Set<WebSocket>;
  outs: Set<WebSocket>;
  /** Payloads received while no `out` was connected (newest last), `backlogBytes` in total. */
  backlog: Uint8Array[];
  backlogBytes: number;
  sequenceNumber: number;
  forwarded: number;
  dropped: number;
}

export interface EchoRoomStats {
  room: string;
  ins: number;
  outs: number;
  forwardedFrames: number;
  droppedFrames: number;
  bufferedMs: number;
}

export class EchoExample implements Example {
  readonly name = "echo";
  readonly description =
    "Sends what an egress adapter delivers (to /in) back into an ingest adapter (from /out).";
  readonly endpoints = [
    {
      path: "/in",
      adapter: "egress" as const,
      query: ["room"],
      description: "Point an egress adapter here: the frames it sends are echoed to /out of the same room.",
    },
    {
      path: "/out",
      adapter: "ingest" as const,
      query: ["room"],
      description: "Point an ingest adapter here: it receives what /in of the same room gets.",
    },
  ];
  private readonly rooms = new Map<string, Room>();
  private readonly logger: ExampleLogger;
  private readonly bufferBytes: number;
  private readonly maxRooms: number;

  constructor(opts: EchoOptions) {
    this.logger = opts.logger;
    this.bufferBytes = Math.round((opts.bufferMs ?? 1000) * BYTES_PER_MS);
    this.maxRooms = opts.maxRooms ?? 256;
  }

  upgrade(subpath: string, query: URLSearchParams): Refusal | ((ws: WebSocket) => void) {
    const side = subpath === "/in" ? "in" : subpath === "/out" ? "out" : undefined;
    if (!side) return { status: 404, message: "echo endpoints are /echo/in?room=… and /echo/out?room=…" };
    const roomName = query.get("room") ?? "default";
    if (!ROOM_PATTERN.test(roomName)) {
      return { status: 400, message: "room must be 1–64 characters of A-Z, a-z, 0-9, _, . and -" };
    }
    if (!this.rooms.has(roomName) && this.rooms.size >= this.maxRooms) {
      return { status: 503, message: `too many echo rooms (${this.maxRooms})` };
    }
    return (ws) => (side === "in" ? this.addIn(roomName, ws) : this.addOut(roomName, ws));
  }

  private room(name: string): Room {
    let room = this.rooms.get(name);
    if (!room) {
      room = {
        ins: new Set(),
        outs: new Set(),
        backlog: [],
        backlogBytes: 0,
        sequenceNumber: 0,
        forwarded: 0,
        dropped: 0,
      };
      this.rooms.set(name, room);
    }
    return room;
  }

  private release(name: string, room: Room): void {
    if (room.ins.size === 0 && room.outs.size === 0) this.rooms.delete(name);
  }

  private addIn(name: string, ws: WebSocket): void {
    const room = this.room(name);
    room.ins.add(ws);
    ws.on("message", (data, isBinary) => {
      try {
        if (!isBinary) return;
        const decoded = decodePacket(messageBytes(data));
        if (!decoded.ok || decoded.packet.payload.length === 0) return;
        // `ws` hands out a fresh Buffer per message, so the payload view stays valid while buffered.
        this.forward(room, decoded.packet.payload, decoded.packet.timestamp);
      } catch (err) {
        this.logger.warn({ err, room: name }, "echo: frame dropped");
      }
    });
    ws.on("close", () => {
      room.ins.delete(ws);
      if (room.ins.size === 0) {
        for (const out of room.outs) this.send(room, out, new Uint8Array(0), 0);
        room.backlog = [];
        room.backlogBytes = 0;
      }
      this.release(name, room);
    });
    this.logger.info({ room: name }, "echo: in connected");
  }

  private addOut(name: string, ws: WebSocket): void {
    const room = this.room(name);
    room.outs.add(ws);
    ws.on("message", () => {}); // ingest sends nothing but pings
    ws.on("close", () => {
      room.outs.delete(ws);
      this.release(name, room);
    });
    for (const payload of room.backlog) this.send(room, ws, payload, 0);
    room.backlog = [];
    room.backlogBytes = 0;
    this.logger.info({ room: name }, "echo: out connected");
  }

  private forward(room: Room, payload: Uint8Array, timestamp: number): void {
    if (room.outs.size === 0) {
      room.backlog.push(payload);
      room.backlogBytes += payload.length;
      while (room.backlogBytes > this.bufferBytes && room.backlog.length > 0) {
        room.backlogBytes -= room.backlog.shift()!.length;
        room.dropped++;
      }
      return;
    }
    for (const out of room.outs) {
      if (out.bufferedAmount > this.bufferBytes) room.dropped++;
      else this.send(room, out, payload, timestamp);
    }
  }

  private send(room: Room, out: WebSocket, payload: Uint8Array, timestamp: number): void {
    if (out.readyState !== out.OPEN) return;
    const message = encodePacket({ sequenceNumber: room.sequenceNumber, timestamp, payload });
    room.sequenceNumber = (room.sequenceNumber + 1) >>> 0;
    if (payload.length > 0) room.forwarded++;
    out.send(message, { binary: true }, (err) => {
      if (err) this.logger.debug({ err }, "echo: send failed");
    });
  }

  stats(): EchoRoomStats[] {
    return [...this.rooms].map(([room, r]) => ({
      room,
      ins: r.ins.size,
      outs: r.outs.size,
      forwardedFrames: r.forwarded,
      droppedFrames: r.dropped,
      bufferedMs: Math.round(r.backlogBytes / BYTES_PER_MS),
    }));
  }

  async close(): Promise<void> {
    this.rooms.clear();
  }
}
