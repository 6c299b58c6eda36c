// Data channel messages through the SFU (issue 12): latency at a steady rate, throughput, and the server's
// CPU per forwarded message, 1 → 1 and 1 → 10. Server in its own process (bench/server-process.ts, native
// plane); here: werift peers that publish and subscribe the way Cloudflare's echo-datachannels example does
// (a data channel in the first offer, datachannels/new, negotiated channels).
//
//   node --import tsx bench/datachannels.ts [--messages 20000] [--subscribers 10]

import { writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { parseArgs } from "node:util";
import type { RTCDataChannel, RTCPeerConnection } from "werift";
import type { ApiClient } from "../src/client/api-client.ts";
import { clientPeer, waitConnected } from "../test/helpers/rtc-client.ts";
import { benchRun, startBenchServer } from "./lib/bench-run.ts";
import { ROOT, runBenchMain, stopChild } from "./lib/children.ts";
import { f, renderTable } from "./lib/format.ts";
import { request, type ServerSnapshot } from "./protocol.ts";

interface Peer {
  pc: RTCPeerConnection;
  sessionId: string;
}

async function dataSession(api: ApiClient): Promise<Peer> {
  const pc = clientPeer();
  pc.addTransceiver("audio", { direction: "recvonly" });
  pc.createDataChannel("server-events", { negotiated: true, id: 0 });
  await pc.setLocalDescription(await pc.createOffer());
  const res = await api.raw<{ sessionId: string; sessionDescription: { type: "answer"; sdp: string } }>(
    "POST",
    "sessions/new",
    { sessionDescription: { type: "offer", sdp: pc.localDescription!.sdp } },
  );
  if (res.status !== 201) throw new Error(`sessions/new ${res.status} ${JSON.stringify(res.body)}`);
  await pc.setRemoteDescription(res.body.sessionDescription);
  await waitConnected(pc);
  return { pc, sessionId: res.body.sessionId };
}

async function channel(api: ApiClient, peer: Peer, item: Record<string, unknown>): Promise<RTCDataChannel> {
  const res = await api.raw<{ dataChannels: { id?: number; errorCode?: string }[] }>(
    "POST",
    `sessions/${peer.sessionId}/datachannels/new`,
    { dataChannels: [item] },
  );
  const id = res.body.dataChannels[0]?.id;
  if (id === undefined) throw new Error(`datachannels/new ${JSON.stringify(res.body)}`);
  const dc = peer.pc.createDataChannel(`${item.dataChannelName}-${item.location}`, { negotiated: true, id });
  if (dc.readyState !== "open")
    await new Promise<void>((r) => dc.stateChanged.subscribe((s) => s === "open" && r()));
  return dc;
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? Number.NaN;
}

/**
 * Sends `n` messages of `size` bytes, at most ~8 KiB ahead of what the publisher's SCTP has sent: werift's
 * own queue costs O(n²) when it runs deep (the reason SctpAssociation keeps its own FIFO on the server).
 */
async function sendAll(dc: RTCDataChannel, n: number, size: number, stamp: boolean): Promise<void> {
  dc.bufferedAmountLowThreshold = 2 * 1024;
  for (let i = 0; i < n; i++) {
    if (dc.bufferedAmount > 8 * 1024) await new Promise((r) => dc.bufferedAmountLow.once(r));
    const b = Buffer.alloc(size);
    if (stamp) b.writeDoubleLE(performance.now(), 0);
    dc.send(b);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      messages: { type: "string", default: "20000" },
      subscribers: { type: "string", default: "10" },
      out: { type: "string" },
    },
  });
  const messages = Number(values.messages);
  const fanout = Number(values.subscribers);
  const run = benchRun("datachannels");
  const { stamp, resultsDir, log, machine, git } = run;
  const { server, api } = await startBenchServer(run);
  const snapshot = async () =>
    (await request<{ id: number; snapshot: ServerSnapshot }>(server, { type: "snapshot" }, 10_000)).snapshot;
  const cpuUs = (a: ServerSnapshot, b: ServerSnapshot) =>
    b.cpuUserUs - a.cpuUserUs + b.cpuSystemUs - a.cpuSystemUs;
  const peers: Peer[] = [];
  const rows: string[][] = [];
  const result: Record<string, unknown> = {};
  try {
    const pub = await dataSession(api);
    peers.push(pub);
    const subs: Peer[] = [];
    for (let i = 0; i < fanout; i++) subs.push(await dataSession(api));
    peers.push(...subs);
    const out = await channel(api, pub, { location: "local", dataChannelName: "bench" });
    const ins = await Promise.all(
      subs.map((s) =>
        channel(api, s, { location: "remote", sessionId: pub.sessionId, dataChannelName: "bench" }),
      ),
    );

    // 1. Latency at 100 messages/s (the echo example's use), 1 → fanout.
    const latencies: number[] = [];
    let counting = true;
    const unsubscribe = ins.map((dc) =>
      dc.onMessage.subscribe((m) => {
        if (counting && Buffer.isBuffer(m)) latencies.push(performance.now() - m.readDoubleLE(0));
      }),
    );
    const paced = 500;
    const t0 = performance.now();
    for (let i = 0; i < paced; i++) {
      const due = t0 + i * 10;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const b = Buffer.alloc(64);
      b.writeDoubleLE(performance.now(), 0);
      out.send(b);
    }
    while (latencies.length < paced * fanout && performance.now() - t0 < paced * 10 + 5000)
      await new Promise((r) => setTimeout(r, 20));
    counting = false;
    for (const u of unsubscribe) u.unSubscribe();
    rows.push([
      `latency at 100 msg/s, 64 B, 1 → ${fanout}`,
      `${f(percentile(latencies, 50), 2)} / ${f(percentile(latencies, 99), 2)} / ${f(Math.max(...latencies), 2)} ms`,
      `${latencies.length} of ${paced * fanout}`,
    ]);
    result.latencyMs = {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: Math.max(...latencies),
    };

    // 2. Throughput, 1 → fanout, then 1 → 1 (the others' subscriptions closed), 200-byte messages.
    for (const n of [fanout, 1]) {
      const receivers = ins.slice(0, n);
      const others = subs.slice(n);
      // Only `n` subscribers: the others' subscriptions end (ids stay taken in the werift clients).
      for (const o of others)
        await api.raw("PUT", `sessions/${o.sessionId}/datachannels/close`, {
          dataChannels: [{ id: ins[subs.indexOf(o)].id }],
        });
      let got = 0;
      const subsOn = receivers.map((dc) => dc.onMessage.subscribe(() => got++));
      const before = await snapshot();
      const start = performance.now();
      await sendAll(out, messages, 200, false);
      while (got < messages * n && performance.now() - start < 120_000)
        await new Promise((r) => setTimeout(r, 20));
      const ms = performance.now() - start;
      const after = await snapshot();
      for (const s of subsOn) s.unSubscribe();
      const perMessageUs = cpuUs(before, after) / messages;
      rows.push([
        `throughput, 200 B, 1 → ${n}`,
        `${f(messages / (ms / 1000), 0)} msg/s in, ${f((got * 1000) / ms, 0)} msg/s out`,
        `server ${f(perMessageUs, 0)} µs per published message (${f(perMessageUs / n, 0)} per delivery); ${got} of ${messages * n} delivered`,
      ]);
      result[`throughput1to${n}`] = { messages, delivered: got, ms, serverCpuUsPerMessage: perMessageUs };
    }
  } finally {
    for (const p of peers) await p.pc.close().catch(() => {});
    await stopChild(server, { type: "shutdown" }, 10_000);
  }
  process.stdout.write(
    `Data channels through the SFU (werift clients, native plane server), commit ${git.commit ?? "?"}, ${machine.cores} × ${machine.cpuModel}\n\n` +
      `${renderTable(["what", "result", "notes"], rows, 1)}\n\n` +
      "Latency: publisher send → subscriber receive, both in this process (same clock), p50 / p99 / max.\n" +
      "Server CPU: the server process's user + system time over the run divided by the messages published.\n",
  );
  const outPath = values.out ?? join(resultsDir, `datachannels-${stamp}.json`);
  writeFileSync(
    outPath,
    `${JSON.stringify({ benchmark: "datachannels", date: new Date().toISOString(), git, machine, fanout, ...result }, null, 2)}\n`,
  );
  process.stdout.write(`JSON: ${relative(ROOT, outPath)}\n`);
  await new Promise<void>((r) => log.end(() => r()));
}

runBenchMain("datachannels", main);
