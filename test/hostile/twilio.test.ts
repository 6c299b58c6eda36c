// Careless and hostile Twilio-dialect bots (issue 14): a message the protocol does not allow is ignored and
// counted, as Twilio ignores it (warnings 31950/31924, the call goes on); messages for another stream and
// unknown events likewise; `clear` drops the queued answer at once, returning its marks; `authToken` signs
// the handshake the way Twilio does.
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { type Publisher, publishAudio } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { speechLike } from "../helpers/signals.ts";
import { startTwilioBot, type TwilioBot, type TwilioBotCall } from "../helpers/twilio-bot.ts";
import { adapterStatus, pollAdapter } from "../helpers/ws-endpoints.ts";

describe("hostile twilio-dialect bots", { timeout: 60_000 }, () => {
  let srv: TestServer;
  let pub: Publisher;
  let bot: TwilioBot;
  before(async () => {
    srv = await startTestServer();
    pub = await publishAudio(srv.api, "caller");
    bot = await startTwilioBot();
  });
  after(async () => {
    await bot?.close();
    await pub?.close();
    await srv?.close();
  });

  /** A twilio adapter on the caller's track (plus `extra` item fields); resolves once the bot has its `start`. */
  async function connect(
    extra: Record<string, unknown> = {},
  ): Promise<{ adapterId: string; call: TwilioBotCall; body: unknown }> {
    const next = bot.nextCall();
    const res = await srv.api.raw<{ tracks: { adapterId: string; errorCode?: string }[] }>(
      "POST",
      "adapters/websocket/new",
      {
        tracks: [
          {
            location: "remote",
            dialect: "twilio",
            sessionId: pub.sessionId,
            trackName: "caller",
            replyTrackName: "bot",
            endpoint: bot.url,
            ...extra,
          },
        ],
      },
    );
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const call = await next;
    await call.waitUntil((m) => m.some((x) => x.event === "start"), 5000, "start");
    return { adapterId: res.body.tracks[0].adapterId, call, body: res.body };
  }

  // Twilio answers these with a warning (31950, 31924) and keeps the call; so do we, counting each.
  const ignored: [string, (call: TwilioBotCall) => void][] = [
    ["a binary message", (c) => c.ws.send(Buffer.from([1, 2, 3]))],
    ["text that is not JSON", (c) => c.ws.send("{nope")],
    ["JSON that is not an object", (c) => c.ws.send("42")],
    ["media without a payload", (c) => c.ws.send(JSON.stringify({ event: "media", media: {} }))],
    ["a mark without a name", (c) => c.ws.send(JSON.stringify({ event: "mark", mark: {} }))],
  ];
  for (const [what, send] of ignored) {
    test(`${what} is ignored and counted; the call goes on`, async () => {
      const { adapterId, call } = await connect();
      send(call);
      send(call);
      const status = await pollAdapter(srv.api, adapterId, (s) => s.textMessagesIgnored >= 2, {
        timeoutMs: 5000,
      });
      assert.equal(status.state, "open");
      assert.equal(status.direction, "bidirectional");
      assert.equal(status.dialect, "twilio");
      // Still a working stream: a mark sent now comes back.
      call.sendMark("still-here");
      await call.waitUntil((m) => m.some((x) => x.mark?.name === "still-here"), 5000, "the mark after it");
    });
  }

  test("authToken signs the handshake as Twilio does (X-Twilio-Signature over the URL) and is shown nowhere", async () => {
    const token = "twilio-auth-token-0123456789abcdef";
    const { adapterId, body } = await connect({ authToken: token });
    const req = bot.endpoint.requests.at(-1)!;
    // Twilio's validateRequest(authToken, signature, url, {}): base64 HMAC-SHA1 of the URL.
    const expected = createHmac("sha1", token).update(bot.url).digest("base64");
    assert.equal(req.headers["x-twilio-signature"], expected);
    const status = await srv.api.raw("GET", `adapters/websocket/${adapterId}`);
    assert.ok(!JSON.stringify(status.body).includes(token));
    assert.ok(!JSON.stringify(body).includes(token));
  });

  test("messages for another stream and unknown events are ignored; the adapter stays open", async () => {
    const { adapterId, call } = await connect();
    call.ws.send(JSON.stringify({ event: "media", streamSid: "MZother", media: { payload: "AAAA" } }));
    call.ws.send(JSON.stringify({ event: "dtmf", streamSid: call.streamSid, dtmf: { digit: "1" } }));
    const status = await pollAdapter(srv.api, adapterId, (s) => s.textMessagesIgnored >= 2, {
      timeoutMs: 5000,
    });
    assert.equal(status.state, "open");
    assert.equal(status.bytesProcessed, 0, "nothing of the other stream's audio was taken");
  });

  test("clear drops the queued answer at once and returns the pending mark; later audio plays", async () => {
    const { adapterId, call } = await connect();
    const answer = speechLike(10_000, { seed: 5 }).filter((_, i) => i % 12 === 0); // ≈ 10 s at 8 kHz mono
    call.sendAudio(answer);
    call.sendMark("end-of-answer");
    const playing = await pollAdapter(srv.api, adapterId, (s) => s.frames >= 25, { timeoutMs: 5000 });
    assert.ok(playing.queuedMs > 5000, `the answer is queued (${playing.queuedMs} ms)`);
    const before = call.messages.length;
    call.sendClear();
    await call.waitUntil(
      (m) => m.slice(before).some((x) => x.event === "mark" && x.mark?.name === "end-of-answer"),
      2000,
      "the cleared mark comes back",
    );
    const cleared = await adapterStatus(srv.api, adapterId);
    assert.equal(cleared.queuedMs, 0);
    assert.ok(cleared.frames < 100, `the rest was not played (${cleared.frames} frames)`);
    call.sendAudio(answer.subarray(0, 8000)); // 1 s
    call.sendMark("next");
    await call.waitUntil((m) => m.some((x) => x.mark?.name === "next"), 5000, "the next answer plays");
    const after = await adapterStatus(srv.api, adapterId);
    assert.ok(after.frames >= cleared.frames + 50, `1 s more played (${cleared.frames} → ${after.frames})`);
    assert.equal(after.state, "open");
  });
});
