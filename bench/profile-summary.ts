// Summarise a V8 .cpuprofile (from `node --cpu-prof` or the node:inspector Profiler): the top functions
// by self time with their file, and self time grouped by area (werift SRTP/crypto, RTP serialize, our
// forwarding code, ICE/UDP, GC, ...).
//
//   node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top 25] [--json]
//
// werift's ESM entry is one bundle (lib/index.mjs); its `// ../rtp/src/srtp/...` section markers are used
// to name the original werift source file of each function.

import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

export interface FunctionRow {
  functionName: string;
  /** Source file; for werift, the original file inside werift's bundle (`werift:rtp/src/...`). */
  file: string;
  /** Where V8 saw the function: file:line of the loaded code (werift: a line of lib/index.mjs). */
  location: string;
  area: string;
  selfMs: number;
  /** Share of non-idle samples. */
  busyPct: number;
}

export interface AreaRow {
  area: string;
  selfMs: number;
  /** Share of all samples, idle included. */
  selfPct: number;
  /** Share of non-idle samples (what the process actually spent CPU on). */
  busyPct: number;
}

export interface ProfileSummary {
  file: string;
  durationMs: number;
  samples: number;
  idleMs: number;
  top: FunctionRow[];
  areas: AreaRow[];
}

/** Maps a line of a bundle with `// path.ts` section markers back to that path. */
function bundleSections(path: string): ((line: number) => string | undefined) | undefined {
  if (!existsSync(path)) return undefined;
  const lines = readFileSync(path, "utf8").split("\n");
  const marks: { line: number; file: string }[] = [];
  for (let i = 0; i < lines.length; i++) {
    const m = /^\/\/ (?:\.\.\/)?([\w\-./]+\.ts)$/.exec(lines[i]);
    if (m) marks.push({ line: i, file: m[1].startsWith("src/") ? `webrtc/${m[1]}` : m[1] });
  }
  if (marks.length === 0) return undefined;
  return (line) => {
    let lo = 0;
    let hi = marks.length - 1;
    if (line < marks[0].line) return undefined;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (marks[mid].line <= line) lo = mid;
      else hi = mid - 1;
    }
    return marks[lo].file;
  };
}

const NATIVE_CRYPTO = new Set([
  "update",
  "final",
  "digest",
  "setAuthTag",
  "getAuthTag",
  "setAAD",
  "createHmac",
  "createCipheriv",
  "createDecipheriv",
  "Hmac",
  "Cipheriv",
  "Decipheriv",
  "timingSafeEqual",
  "initiv",
  "CipherBase",
]);

/** Where self time of helpers that belong to no area (Node builtins, werift's binary helpers) is charged. */
export const RUNTIME = "Node runtime/builtins";

/**
 * Which part of the system a function belongs to, or undefined for generic helpers (Node builtins,
 * natives, werift's bit/number helpers): their self time is charged to the area of the nearest caller that
 * has one, so `writeBigUInt64BE` called by werift's SRTP code counts as SRTP. `file` is already resolved
 * (werift: its source path inside the bundle).
 */
export function areaOf(functionName: string, url: string, file: string): string | undefined {
  if (functionName === "(garbage collector)") return "GC";
  if (functionName === "(idle)" || functionName === "(root)") return "idle";
  if (functionName === "(program)") return "V8/native (unattributed)";
  if (file.startsWith("werift:")) {
    const f = file.slice("werift:".length);
    if (
      f.startsWith("rtp/src/srtp") ||
      f.startsWith("dtls/src/cipher") ||
      f.startsWith("dtls/src/context/cipher")
    )
      return "werift SRTP/crypto";
    if (f.startsWith("rtp/src/rtcp")) return "werift RTCP";
    if (f.startsWith("rtp/src")) return "werift RTP serialize/parse";
    if (f.startsWith("ice") || f.startsWith("common/src/transport") || f.startsWith("common/src/network"))
      return "ICE/UDP send+receive";
    if (f.startsWith("dtls")) return "werift DTLS transport";
    if (f.startsWith("common/src/event")) return "werift events";
    if (f.startsWith("common/src/binary") || f.startsWith("common/src/number")) return undefined;
    if (f.startsWith("webrtc")) return "werift webrtc (sender/receiver/transport)";
    return "werift other";
  }
  if (url.includes("/node_modules/werift/")) return "werift other";
  if (
    url === "node:crypto" ||
    url.startsWith("node:internal/crypto") ||
    (url === "" && NATIVE_CRYPTO.has(functionName))
  )
    return "werift SRTP/crypto";
  // dgram resolves the (literal IP) destination through dns.lookup on every send.
  if (url === "node:dgram" || url.startsWith("node:internal/dgram") || url === "node:dns")
    return "ICE/UDP send+receive";
  if (url === "" && (functionName === "send" || functionName === "onmessage" || functionName === "recvmsg"))
    return "ICE/UDP send+receive";
  if (/\/src\/(rtc|sfu|media)\//.test(url)) return "Patchbay forwarding (sender-sink/track/session)";
  if (url.includes("/node_modules/prom-client/")) return "metrics (prom-client)";
  if (/\/src\//.test(url)) return "Patchbay other (API, metrics, util)";
  if (url.includes("/node_modules/")) {
    const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
    return `dependency ${m?.[1] ?? "?"}`;
  }
  if (url.startsWith("node:") || url === "") return undefined;
  return "other";
}

function shortFile(url: string): string {
  if (!url) return "(native)";
  let path = url;
  try {
    if (url.startsWith("file:")) path = fileURLToPath(url);
  } catch {}
  const nm = path.lastIndexOf("/node_modules/");
  if (nm >= 0) return path.slice(nm + "/node_modules/".length);
  const cwd = `${process.cwd()}/`;
  return path.startsWith(cwd) ? path.slice(cwd.length) : path;
}

export function summarizeProfile(path: string, topN = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, "utf8")) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  for (const n of profile.nodes) byId.set(n.id, n);
  const selfUs = new Map<number, number>();
  const samples = profile.samples ?? [];
  const deltas = profile.timeDeltas ?? [];
  if (samples.length > 0 && deltas.length === samples.length) {
    // timeDeltas[i] is the time before sample i; attribute each interval to the sample that ends it,
    // which is how Chrome DevTools attributes self time.
    for (let i = 0; i < samples.length; i++) {
      const dt = Math.max(0, deltas[i + 1] ?? 0);
      selfUs.set(samples[i], (selfUs.get(samples[i]) ?? 0) + dt);
    }
  } else {
    const total = profile.endTime - profile.startTime;
    const hits = profile.nodes.reduce((a, n) => a + (n.hitCount ?? 0), 0) || 1;
    for (const n of profile.nodes) selfUs.set(n.id, ((n.hitCount ?? 0) / hits) * total);
  }

  const sections = new Map<string, ((line: number) => string | undefined) | undefined>();
  const resolveFile = (url: string, line: number): string => {
    if (url.includes("/node_modules/werift/") && url.endsWith(".mjs")) {
      if (!sections.has(url)) {
        let p: string | undefined;
        try {
          p = fileURLToPath(url);
        } catch {
          p = undefined;
        }
        sections.set(url, p ? bundleSections(p) : undefined);
      }
      const src = sections.get(url)?.(line);
      if (src) return `werift:${src}`;
    }
    const m = /\/node_modules\/werift\/lib\/([^/]+)\/(.*)$/.exec(url);
    if (m) return `werift:${m[1]}/${m[2].replace(/\.js$/, ".ts")}`;
    return shortFile(url);
  };

  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const ownArea = new Map<number, string | undefined>();
  const own = (id: number): string | undefined => {
    if (!ownArea.has(id)) {
      const cf = byId.get(id)?.callFrame;
      ownArea.set(id, cf ? areaOf(cf.functionName, cf.url, resolveFile(cf.url, cf.lineNumber)) : undefined);
    }
    return ownArea.get(id);
  };
  /** The node's own area, else its nearest caller's (bounded by the tree depth). */
  const charged = (id: number): string => {
    let cur: number | undefined = id;
    for (let depth = 0; cur !== undefined && depth < 10_000; depth++) {
      const a = own(cur);
      if (a !== undefined && a !== "idle") return a;
      if (a === "idle" && cur === id) return a;
      cur = parent.get(cur);
    }
    return RUNTIME;
  };

  const rows = new Map<string, Omit<FunctionRow, "busyPct">>();
  const areas = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    if (us === 0) continue;
    const node = byId.get(id);
    if (!node) continue;
    const cf = node.callFrame;
    const file = resolveFile(cf.url, cf.lineNumber);
    const area = charged(id);
    totalUs += us;
    if (area === "idle") idleUs += us;
    areas.set(area, (areas.get(area) ?? 0) + us);
    const name = cf.functionName || "(anonymous)";
    // Keyed by area too: a builtin called from two areas shows as two rows.
    const key = `${name}\u0000${cf.url}\u0000${cf.lineNumber}\u0000${cf.columnNumber}\u0000${area}`;
    const row = rows.get(key);
    if (row) row.selfMs += us / 1000;
    else {
      const loaded = shortFile(cf.url);
      const location = cf.url ? (cf.lineNumber > 0 ? `${loaded}:${cf.lineNumber + 1}` : loaded) : "(native)";
      rows.set(key, { functionName: name, file, location, area, selfMs: us / 1000 });
    }
  }
  const pct = (us: number) => (totalUs > 0 ? (100 * us) / totalUs : 0);
  const busyUs = totalUs - idleUs;
  const top = [...rows.values()]
    .filter((r) => r.area !== "idle")
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, topN)
    .map((r) => ({ ...r, busyPct: busyUs > 0 ? (100 * r.selfMs * 1000) / busyUs : 0 }));
  const areaRows = [...areas.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([area, us]) => ({
      area,
      selfMs: us / 1000,
      selfPct: pct(us),
      busyPct: area === "idle" || busyUs <= 0 ? 0 : (100 * us) / busyUs,
    }));
  return {
    file: path,
    durationMs: (profile.endTime - profile.startTime) / 1000,
    samples: samples.length,
    idleMs: idleUs / 1000,
    top,
    areas: areaRows,
  };
}

export function formatProfileSummary(s: ProfileSummary): string {
  const out: string[] = [];
  const busyMs = s.areas.filter((a) => a.area !== "idle").reduce((a, r) => a + r.selfMs, 0);
  out.push(
    `CPU profile ${shortFile(s.file)}: ${s.durationMs.toFixed(0)} ms, ${s.samples} samples, ` +
      `busy ${busyMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms`,
  );
  out.push("", "Self time by area (% of busy time):");
  for (const a of s.areas) {
    if (a.area === "idle") continue;
    out.push(`  ${a.busyPct.toFixed(1).padStart(5)} %  ${a.selfMs.toFixed(0).padStart(7)} ms  ${a.area}`);
  }
  out.push("", `Top ${s.top.length} functions by self time (% of busy time):`);
  const nameW = Math.min(40, Math.max(8, ...s.top.map((r) => r.functionName.length)));
  const areaW = Math.max(4, ...s.top.map((r) => r.area.length));
  out.push(
    `  ${"self ms".padStart(8)} ${"%".padStart(5)}  ${"function".padEnd(nameW)}  ${"area".padEnd(areaW)}  file`,
  );
  for (const r of s.top) {
    const where =
      r.file === shortFile(r.location.replace(/:\d+$/, "")) ? r.location : `${r.file} (${r.location})`;
    out.push(
      `  ${r.selfMs.toFixed(1).padStart(8)} ${r.busyPct.toFixed(1).padStart(5)}  ${r.functionName.slice(0, nameW).padEnd(nameW)}  ${r.area.padEnd(areaW)}  ${where}`,
    );
  }
  return out.join("\n");
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith("--") && !/^\d+$/.test(a));
  const topIdx = args.indexOf("--top");
  const topN = topIdx >= 0 ? Number(args[topIdx + 1]) : 25;
  if (!file || !(topN > 0)) {
    process.stderr.write(
      "usage: node --import tsx bench/profile-summary.ts <file.cpuprofile> [--top 25] [--json]\n",
    );
    process.exit(2);
  }
  const summary = summarizeProfile(file, topN);
  process.stdout.write(
    args.includes("--json") ? `${JSON.stringify(summary, null, 2)}\n` : `${formatProfileSummary(summary)}\n`,
  );
}
