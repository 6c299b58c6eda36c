// A Twilio Media Streams bot, written the way one is written for Twilio, runnable on its own:
//
//   node --import tsx examples/twilio-echo-bot.ts --port 9005
//
// It is the WebSocket server of a bidirectional <Connect><Stream>: it repeats what the caller says
// (each inbound `media` chunk goes straight back as outbound `media`) and drops a `mark` every second,
// logging when Twilio (or Patchbay's `"dialect": "twilio"` adapter) reports it played. Nothing here is
// Patchbay-specific; point a twilio adapter at the printed URL (README, "Twilio dialect").

import { parseArgs } from "node:util";
import { WebSocketServer } from "ws";

const { values } = parseArgs({ options: { port: { type: "string", default: "9005" } } });
const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(values.port) });

wss.on("listening", () => {
  const address = wss.address();
  const port = typeof address === "object" && address ? address.port : values.port;
  console.log(`twilio echo bot: ws://127.0.0.1:${port}/twilio`);
});

wss.on("connection", (ws) => {
  let streamSid = "";
  let chunks = 0;
  ws.on("message", (data) => {
    const msg = JSON.parse(data.toString());
    switch (msg.event) {
      case "start":
        streamSid = msg.start.streamSid;
        console.log(`call ${msg.start.callSid}: ${JSON.stringify(msg.start.mediaFormat)}`);
        break;
      case "media":
        // Twilio's inbound audio: base64 µ-law, 8 kHz mono, 20 ms per message. Say it right back.
        ws.send(JSON.stringify({ event: "media", streamSid, media: { payload: msg.media.payload } }));
        if (++chunks % 50 === 0)
          ws.send(JSON.stringify({ event: "mark", streamSid, mark: { name: `second-${chunks / 50}` } }));
        break;
      case "mark":
        console.log(`played: ${msg.mark.name}`);
        break;
      case "stop":
        console.log(`call ended: ${msg.stop.callSid}`);
        break;
    }
  });
});
