// Browser → JPEG egress: Chromium publishes its fake camera (VP8, then H.264), an egress adapter with
// outputCodec "jpeg" streams the track to a WebSocket endpoint as images, which are decoded here with a real
// JPEG decoder (jpeg-js) and compared with what the browser says it sends.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, test } from "node:test";
import jpeg from "jpeg-js";
import { browserSuite, type ClientPage, type PublishResult } from "../helpers/browser.ts";
import { adapterStatus, closeOf, receiver, startEndpoint } from "../helpers/ws-endpoints.ts";

/** Luma standard deviation of a decoded RGBA image (0 for a uniform one). */
function lumaStd(img: { data: Uint8Array; width: number; height: number }): number {
  let sum = 0;
  let sq = 0;
  const n = img.width * img.height;
  for (let i = 0; i < n; i++) {
    const y = 0.299 * img.data[i * 4] + 0.587 * img.data[i * 4 + 1] + 0.114 * img.data[i * 4 + 2];
    sum += y;
    sq += y * y;
  }
  const mean = sum / n;
  return Math.sqrt(Math.max(0, sq / n - mean * mean));
}

async function sentResolution(page: ClientPage, label: string): Promise<{ width: number; height: number }> {
  const [out] = await page.statsOfType(label, "outbound-rtp");
  return { width: Number(out?.frameWidth), height: Number(out?.frameHeight) };
}

describe("browser JPEG egress: Chromium's camera as JPEG images over WebSocket", { timeout: 150_000 }, () => {
  const env = browserSuite();

  for (const codec of ["video/VP8", "video/H264"] as const) {
    test(`${codec}: decodable JPEGs at about 1 per second, the size the browser sends, a moving picture`, {
      timeout: 60_000,
    }, async () => {
      const page = await env.browser.open();
      const name = `cam-${codec.slice(6).toLowerCase()}`;
      const published: PublishResult = await page.publish("video", name, {
        codec,
        ...(codec === "video/H264" ? { fmtp: "packetization-mode=1" } : {}),
      });
      const endpoint = await startEndpoint(() => {}, "/frames");
      try {
        const conn = endpoint.nextConnection();
        const res = await env.server.api.raw<{ tracks: { adapterId?: string; errorCode?: string }[] }>(
          "POST",
          "adapters/websocket/new",
          {
            tracks: [
              {
                location: "remote",
                sessionId: published.sessionId,
                trackName: name,
                endpoint: endpoint.url,
                outputCodec: "jpeg",
              },
            ],
          },
        );
        assert.equal(res.status, 200, JSON.stringify(res.body));
        const adapterId = res.body.tracks[0].adapterId!;
        const ws = await conn;
        const rx = receiver(ws);
        // What Chromium sends, sampled meanwhile: its resolution adapts in the first seconds.
        const sizes = new Set<string>();
        let sampling = true;
        const sampler = (async () => {
          while (sampling) {
            const s = await sentResolution(page, published.label);
            sizes.add(`${s.width}x${s.height}`);
            await new Promise((r) => setTimeout(r, 200));
          }
        })();
        await rx.waitFor(5, 20_000);
        sampling = false;
        await sampler;
        const packets = rx.packets.slice(0, 5);
        const t = rx.times.slice(0, 5);
        assert.equal(rx.invalid, 0, "every message is a Packet");
        const images = packets.map((p) => jpeg.decode(Buffer.from(p.payload), { useTArray: true }));

        // Sequence numbers count images from 1; timestamps are the source's 90 kHz clock, increasing.
        assert.deepEqual(
          packets.map((p) => p.sequenceNumber),
          [1, 2, 3, 4, 5],
        );
        for (let i = 1; i < packets.length; i++)
          assert.ok(
            (packets[i].timestamp - packets[i - 1].timestamp) >>> 0 < 90_000 * 10,
            "timestamps advance",
          );

        // About one image per second (--jpeg-fps 1), measured between the 2nd and the last arrival.
        const rate = (t.length - 2) / ((t[t.length - 1] - t[1]) / 1000);
        assert.ok(rate > 0.6 && rate < 1.6, `images per second ${rate.toFixed(2)}`);

        // Each image has a size Chromium sent, a real picture (not uniform), and the camera's animation.
        const last = images[images.length - 1];
        for (const img of images) {
          assert.ok(
            sizes.has(`${img.width}x${img.height}`),
            `${img.width}x${img.height} in sent sizes ${[...sizes].join(", ")}`,
          );
          assert.ok(lumaStd(img) > 5, `image has content (luma std ${lumaStd(img).toFixed(1)})`);
        }
        const distinct = new Set(packets.map((p) => Buffer.from(p.payload).toString("base64")));
        assert.ok(
          distinct.size >= 3,
          `the picture moves: ${distinct.size} distinct images of ${packets.length}`,
        );

        const status = await adapterStatus(env.server.api, adapterId);
        assert.equal(status.direction, "egress");
        assert.ok(status.frames >= 5, `status counts images: ${status.frames}`);
        if (codec === "video/H264") {
          // The decoder dies (crash, OOM kill): the adapter ends with 1011 and says why; the server stays up.
          const pids = execFileSync("pgrep", ["-f", "patchbay-jpeg-.*in\\.sdp"])
            .toString()
            .trim()
            .split("\n");
          assert.equal(pids.length, 1, `one ffmpeg per adapter: ${pids.join(" ")}`);
          process.kill(Number(pids[0]), "SIGKILL");
          const closed = await closeOf(ws);
          assert.equal(closed.code, 1011);
          assert.match(closed.reason, /video decoder \(ffmpeg\) exited \(SIGKILL\)/);
          const after = await adapterStatus(env.server.api, adapterId);
          assert.equal(after.state, "closed");
          assert.match(after.closeReason ?? "", /video decoder \(ffmpeg\) exited/);
          assert.equal((await env.server.api.raw("GET", `sessions/${published.sessionId}`)).status, 200);
        }
        console.log(
          `${codec}: ${packets.length} JPEGs ${last.width}x${last.height}, ${(packets.reduce((s, p) => s + p.payload.length, 0) / packets.length / 1024).toFixed(1)} KiB each, ${rate.toFixed(2)}/s`,
        );
      } finally {
        await endpoint.close();
      }
    });
  }
});
