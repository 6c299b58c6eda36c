import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { MediaStreamTrack } from "werift";
import { clientPeer, type Publisher, publishAudio, waitConnected } from "../helpers/rtc-client.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";
import { type Endpoint, startEndpoint } from "../helpers/ws-endpoints.ts";

// outputCodec "jpeg": the refusals (test/browser/jpeg.test.ts has the images from Chromium's camera).

type Item = { adapterId?: string; errorCode?: string; errorDescription?: string };

/** A werift peer publishing one VP8 video track (negotiated and connected; no packets needed here). */
async function publishVideo(server: TestServer, trackName: string) {
  const pc = clientPeer({ video: true });
  const tr = pc.addTransceiver(new MediaStreamTrack({ kind: "video" }), { direction: "sendonly" });
  await pc.setLocalDescription(await pc.createOffer());
  const { sessionId } = await server.api.newSession();
  const res = await server.api.newTracks(sessionId, {
    sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp },
    tracks: [{ location: "local", mid: tr.mid!, trackName }],
  });
  await pc.setRemoteDescription(res.sessionDescription!);
  await waitConnected(pc);
  return { pc, sessionId };
}

function jpegItem(from: { sessionId: string }, trackName: string, endpoint: string) {
  return {
    tracks: [{ location: "remote", sessionId: from.sessionId, trackName, endpoint, outputCodec: "jpeg" }],
  };
}

describe('adapters/websocket/new with outputCodec "jpeg": refusals', () => {
  let server: TestServer;
  let endpoint: Endpoint;
  let audio: Publisher;
  let video: Awaited<ReturnType<typeof publishVideo>>;

  before(async () => {
    server = await startTestServer(["--ffmpeg-path", "/nonexistent/bin/ffmpeg"]);
    endpoint = await startEndpoint(() => {}, "/frames");
    audio = await publishAudio(server.api, "mic");
    video = await publishVideo(server, "cam");
  });
  after(async () => {
    await audio?.close();
    await video?.pc.close();
    await endpoint?.close();
    await server?.close();
  });

  test("an audio track: 406 invalid_params saying a video track is needed; nothing is dialed", async () => {
    const res = await server.api.raw<Item>(
      "POST",
      "adapters/websocket/new",
      jpegItem(audio, "mic", endpoint.url),
    );
    assert.equal(res.status, 406, JSON.stringify(res.body));
    assert.equal(res.body.errorCode, "invalid_params");
    assert.match(
      res.body.errorDescription ?? "",
      /tracks\[0\]: track mic is audio; outputCodec "jpeg" needs a video track/,
    );
    assert.equal(endpoint.connections.length, 0);
  });

  test("pcm from a video track, or an unknown outputCodec: refused naming what fits", async () => {
    const png = await server.api.raw<Item>("POST", "adapters/websocket/new", {
      tracks: [
        {
          location: "remote",
          sessionId: video.sessionId,
          trackName: "cam",
          endpoint: endpoint.url,
          outputCodec: "png",
        },
      ],
    });
    assert.equal(png.status, 406);
    assert.match(
      png.body.errorDescription ?? "",
      /"png" is not supported \(use "pcm", "pcmu" or "pcma" for audio, "jpeg" for video\)/,
    );
    const pcm = await server.api.raw<{ tracks: Item[] }>("POST", "adapters/websocket/new", {
      tracks: [
        {
          location: "remote",
          sessionId: video.sessionId,
          trackName: "cam",
          endpoint: endpoint.url,
          outputCodec: "pcm",
        },
      ],
    });
    assert.equal(pcm.body.tracks[0].errorCode, "not_found_track_error");
    assert.match(pcm.body.tracks[0].errorDescription ?? "", /cam is video; PCM egress needs audio/);
  });

  test("no such track: per-item not_found_track_error (503)", async () => {
    const res = await server.api.raw<{ tracks: Item[] }>(
      "POST",
      "adapters/websocket/new",
      jpegItem(video, "nope", endpoint.url),
    );
    assert.equal(res.status, 503);
    assert.equal(res.body.tracks[0].errorCode, "not_found_track_error");
  });

  test("ffmpeg missing: per-item video_decoder_unavailable naming the fix; the endpoint is never dialed", async () => {
    const res = await server.api.raw<{ tracks: Item[] }>(
      "POST",
      "adapters/websocket/new",
      jpegItem(video, "cam", endpoint.url),
    );
    assert.equal(res.status, 503, JSON.stringify(res.body));
    assert.equal(res.body.tracks[0].errorCode, "video_decoder_unavailable");
    assert.match(
      res.body.tracks[0].errorDescription ?? "",
      /\/nonexistent\/bin\/ffmpeg not found: install ffmpeg \(Debian: apt-get install ffmpeg\) or set --ffmpeg-path/,
    );
    assert.equal(endpoint.connections.length, 0);
    const list = await server.api.raw<{ adapters: unknown[] }>("GET", "adapters/websocket");
    assert.deepEqual(list.body.adapters, []);
  });
});
