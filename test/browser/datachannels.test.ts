// Data channels as Cloudflare's echo-datachannels example uses them (issue 12): two Chromium pages each make
// a session from an offer with an inactive audio transceiver and an in-band "server-events" channel; page A
// publishes "channel-one" (datachannels/new, local), page B subscribes to it (remote, A's session id); both
// open negotiated channels with the ids the server chose. 10 000 messages from A reach B, none lost,
// none reordered, strings and binary alike; B's channel is one-way (Cloudflare's model).

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { browserSuite, type ClientPage } from "../helpers/browser.ts";

const N = 10_000;

type DcWindow = Window & {
  pc?: RTCPeerConnection;
  channel?: RTCDataChannel;
  received?: (string | number)[];
};

/**
 * Cloudflare's createCallsSession(), in the page: resolves with the session id once ICE is connected.
 * `withDataChannel: false` leaves the data channel out (datachannels/establish adds the transport later).
 */
async function createSession(page: ClientPage, withDataChannel = true): Promise<string> {
  return page.page.evaluate(
    async ([api, withDataChannel]) => {
      const w = window as DcWindow;
      const pc = new RTCPeerConnection({ bundlePolicy: "max-bundle" });
      w.pc = pc;
      pc.addTransceiver("audio", { direction: "inactive" });
      if (withDataChannel) pc.createDataChannel("server-events");
      await pc.setLocalDescription(await pc.createOffer());
      const res = await fetch(`${api.base}/v1/apps/${api.appId}/sessions/new`, {
        method: "POST",
        headers: { Authorization: `Bearer ${api.secret}` },
        body: JSON.stringify({ sessionDescription: pc.localDescription }),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`sessions/new ${res.status} ${JSON.stringify(body)}`);
      const connected = new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`ICE ${pc.iceConnectionState} after 10 s`)), 10_000);
        pc.addEventListener("iceconnectionstatechange", () => {
          if (pc.iceConnectionState === "connected") {
            clearTimeout(t);
            resolve();
          }
        });
      });
      await pc.setRemoteDescription(body.sessionDescription);
      await connected;
      return body.sessionId as string;
    },
    [page.api, withDataChannel] as const,
  );
}

/** datachannels/establish from the page: Patchbay's offer answered through PUT renegotiate, or the page's offer. */
async function establish(page: ClientPage, sessionId: string, pageOffers: boolean): Promise<unknown> {
  return page.page.evaluate(
    async ([api, sessionId, pageOffers]) => {
      const pc = (window as DcWindow).pc!;
      const base = `${api.base}/v1/apps/${api.appId}/sessions/${sessionId}`;
      const headers = { Authorization: `Bearer ${api.secret}` };
      const dataChannel = { location: "remote", dataChannelName: "server-events" };
      if (pageOffers) {
        pc.createDataChannel("server-events");
        await pc.setLocalDescription(await pc.createOffer());
      }
      const res = await fetch(`${base}/datachannels/establish`, {
        method: "POST",
        headers,
        body: JSON.stringify(
          pageOffers ? { dataChannel, sessionDescription: pc.localDescription } : { dataChannel },
        ),
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`establish ${res.status} ${JSON.stringify(body)}`);
      await pc.setRemoteDescription(body.sessionDescription);
      if (!pageOffers) {
        await pc.setLocalDescription(await pc.createAnswer());
        const r = await fetch(`${base}/renegotiate`, {
          method: "PUT",
          headers,
          body: JSON.stringify({ sessionDescription: pc.localDescription }),
        });
        if (!r.ok) throw new Error(`renegotiate ${r.status} ${await r.text()}`);
      }
      return {
        requiresImmediateRenegotiation: body.requiresImmediateRenegotiation,
        dataChannel: body.dataChannel,
      };
    },
    [page.api, sessionId, pageOffers] as const,
  );
}

/** datachannels/new with one item, then the negotiated channel with the id the server gave. */
async function openChannel(
  page: ClientPage,
  sessionId: string,
  item: { location: "local" | "remote"; dataChannelName: string; sessionId?: string },
): Promise<{ id: number; response: unknown }> {
  return page.page.evaluate(
    async ([api, sessionId, item]) => {
      const w = window as DcWindow;
      const res = await fetch(`${api.base}/v1/apps/${api.appId}/sessions/${sessionId}/datachannels/new`, {
        method: "POST",
        headers: { Authorization: `Bearer ${api.secret}` },
        body: JSON.stringify({ dataChannels: [item] }),
      });
      const body = await res.json();
      const id = body.dataChannels?.[0]?.id;
      if (!res.ok || typeof id !== "number")
        throw new Error(`datachannels/new ${res.status} ${JSON.stringify(body)}`);
      const channel = w.pc!.createDataChannel(`${item.dataChannelName}-${item.location}`, {
        negotiated: true,
        id,
      });
      channel.binaryType = "arraybuffer";
      w.channel = channel;
      w.received = [];
      channel.addEventListener("message", (e) =>
        w.received!.push(typeof e.data === "string" ? e.data : (e.data as ArrayBuffer).byteLength),
      );
      await new Promise<void>((resolve, reject) => {
        if (channel.readyState === "open") return resolve();
        channel.addEventListener("open", () => resolve());
        setTimeout(() => reject(new Error(`channel ${id} not open after 10 s`)), 10_000);
      });
      return { id, response: body };
    },
    [page.api, sessionId, item] as const,
  );
}

describe("browser data channels: Cloudflare's echo-datachannels flow", { timeout: 120_000 }, () => {
  const env = browserSuite();

  test("datachannels/establish on sessions made without a data channel: Patchbay's offer, and the page's", async () => {
    const c = await env.browser.open();
    const d = await env.browser.open();
    const sessionC = await createSession(c, false);
    const sessionD = await createSession(d, false);
    assert.deepEqual(await establish(c, sessionC, false), {
      requiresImmediateRenegotiation: true,
      dataChannel: { dataChannelName: "server-events", id: 0 },
    });
    assert.deepEqual(await establish(d, sessionD, true), {
      requiresImmediateRenegotiation: false,
      dataChannel: { dataChannelName: "server-events", id: 0 },
    });
    await openChannel(c, sessionC, { location: "local", dataChannelName: "late" });
    await openChannel(d, sessionD, { location: "remote", sessionId: sessionC, dataChannelName: "late" });
    await c.page.evaluate(() => {
      for (let i = 0; i < 100; i++) (window as DcWindow).channel!.send(`late ${i}`);
    });
    const got = await d.page.evaluate(async () => {
      const w = window as DcWindow;
      const deadline = performance.now() + 10_000;
      while (w.received!.length < 100 && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      return w.received!;
    });
    assert.deepEqual(
      got,
      Array.from({ length: 100 }, (_, i) => `late ${i}`),
    );
  });

  test("10 000 messages publisher → subscriber, in order, none lost; the session lists its channels", async () => {
    const a = await env.browser.open();
    const b = await env.browser.open();
    const sessionA = await createSession(a);
    const sessionB = await createSession(b);
    const published = await openChannel(a, sessionA, { location: "local", dataChannelName: "channel-one" });
    const subscribed = await openChannel(b, sessionB, {
      location: "remote",
      sessionId: sessionA,
      dataChannelName: "channel-one",
    });
    assert.deepEqual(published.response, {
      dataChannels: [{ location: "local", dataChannelName: "channel-one", id: published.id }],
    });
    assert.deepEqual(subscribed.response, {
      dataChannels: [
        { location: "remote", sessionId: sessionA, dataChannelName: "channel-one", id: subscribed.id },
      ],
    });

    const t0 = performance.now();
    // Every 10th message binary (its length says which), the rest strings; the sender respects bufferedAmount.
    await a.page.evaluate(async (n) => {
      const ch = (window as DcWindow).channel!;
      ch.bufferedAmountLowThreshold = 256 * 1024;
      for (let i = 0; i < n; i++) {
        if (ch.bufferedAmount > 1024 * 1024)
          await new Promise((r) => ch.addEventListener("bufferedamountlow", r, { once: true }));
        if (i % 10 === 9) ch.send(new Uint8Array(100 + (i % 1000)));
        else ch.send(`message ${i}`);
      }
    }, N);
    const got = await b.page.evaluate(async (n) => {
      const w = window as DcWindow;
      const deadline = performance.now() + 60_000;
      while (w.received!.length < n && performance.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      return w.received!;
    }, N);
    const ms = performance.now() - t0;
    console.log(`${got.length} of ${N} messages through the SFU in ${ms.toFixed(0)} ms`);
    assert.equal(got.length, N, "none lost");
    for (let i = 0; i < N; i++) {
      const want = i % 10 === 9 ? 100 + (i % 1000) : `message ${i}`;
      if (got[i] !== want)
        assert.fail(`message ${i}: got ${JSON.stringify(got[i])}, want ${JSON.stringify(want)}`);
    }

    const info = await env.server.api.raw<{ dataChannels: unknown[] }>("GET", `sessions/${sessionB}`);
    assert.deepEqual(info.body.dataChannels, [
      {
        location: "remote",
        sessionId: sessionA,
        dataChannelName: "channel-one",
        id: subscribed.id,
        status: "active",
        messagesDelivered: N,
        messagesDropped: 0,
      },
    ]);

    // One way: what the subscriber sends on its channel goes nowhere (Cloudflare's model), and breaks nothing.
    await b.page.evaluate(() => (window as DcWindow).channel!.send("reply?"));
    await a.page.evaluate(() => (window as DcWindow).channel!.send("after the reply"));
    const last = await b.page.evaluate(async () => {
      const w = window as DcWindow;
      while (w.received!.length < 10_001) await new Promise((r) => setTimeout(r, 20));
      return w.received!.at(-1);
    });
    assert.equal(last, "after the reply");
    assert.equal(await a.page.evaluate(() => (window as DcWindow).received!.length), 0);

    // canReply toggled on: B's messages reach A (only A); toggled off: they go nowhere again.
    const update = (canReply: boolean) =>
      env.server.api.raw<{ dataChannels: { canReply?: boolean }[] }>(
        "PUT",
        `sessions/${sessionB}/datachannels/update`,
        {
          dataChannels: [
            { location: "remote", sessionId: sessionA, dataChannelName: "channel-one", canReply },
          ],
        },
      );
    assert.equal((await update(true)).body.dataChannels[0].canReply, true);
    await b.page.evaluate(() => (window as DcWindow).channel!.send("a reply"));
    const atA = await a.page.evaluate(async () => {
      const w = window as DcWindow;
      while (w.received!.length < 1) await new Promise((r) => setTimeout(r, 20));
      return w.received!;
    });
    assert.deepEqual(atA, ["a reply"]);
    assert.equal((await update(false)).body.dataChannels[0].canReply, false);

    // The publisher closes its channel: the subscription turns inactive.
    const closed = await env.server.api.raw<{ dataChannels: { id?: number }[] }>(
      "PUT",
      `sessions/${sessionA}/datachannels/close`,
      { dataChannels: [{ id: published.id }] },
    );
    assert.equal(closed.body.dataChannels[0].id, published.id);
    const after = await env.server.api.raw<{ dataChannels: { status: string }[] }>(
      "GET",
      `sessions/${sessionB}`,
    );
    assert.equal(after.body.dataChannels[0].status, "inactive");
  });
});
