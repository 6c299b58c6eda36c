// "Recordings": the WAV files of the built-in recorder example (GET /examples/recorder/files), shown once the
// recorder has been used. The list format is read liberally: an array (or {files|recordings: array}) of
// file names or of objects with name/file/path, url/href, bytes/size, durationMs/duration(s), createdAt/mtime.
import { $, fmtBytes, fmtDuration, h, setText } from "./dom.js";
import { logError } from "./log.js";
import { on, state } from "./state.js";

export const FILES_PATH = "/examples/recorder/files";

let visible = false;
let inFlight = false;

export function initRecordings() {
  on("recorder", () => {
    if (!visible) {
      visible = true;
      $("#recordings-card").hidden = false;
      void refreshRecordings();
    }
  });
  $("#recordings-refresh").addEventListener("click", () => void refreshRecordings());
  $("#recordings-list").addEventListener("click", onClick);
}

export function resetRecordings() {
  visible = false;
  $("#recordings-card").hidden = true;
  $("#recordings-list").replaceChildren();
  items.clear();
  levels.clear();
}

/** Polled every few seconds while the card is visible. */
export async function refreshRecordings() {
  if (!visible || inFlight || !state.api) return;
  inFlight = true;
  try {
    let res;
    try {
      res = await fetch(FILES_PATH, {
        cache: "no-store",
        headers: state.examplesToken ? { Authorization: `Bearer ${state.examplesToken}` } : {},
      });
    } catch (err) {
      logError(err, "Listing recordings");
      return;
    }
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      logError(
        {
          errorCode: json?.errorCode ?? `http_${res.status}`,
          errorDescription: json?.errorDescription ?? (text.slice(0, 200) || res.statusText),
          method: "GET",
          path: FILES_PATH,
          status: res.status,
        },
        "Listing recordings",
      );
      return;
    }
    render(parseFiles(json), parseActive(json));
  } finally {
    inFlight = false;
  }
}

/**
 * Only http(s) links on a path of this origin or an absolute http(s) URL; never javascript: or data:.
 * Links to this server's examples carry the examples token when the server asks for one (a download link
 * or an <audio> element cannot send a header).
 */
function safeUrl(url) {
  try {
    const u = new URL(url, location.origin);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    if (state.examplesToken && u.origin === location.origin && u.pathname.startsWith("/examples/"))
      u.searchParams.set("token", state.examplesToken);
    return u.href;
  } catch {
    return null;
  }
}

function num(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** @returns {{name: string, url: string | null, bytes?: number, durationMs?: number}[]} */
export function parseFiles(json) {
  const list = Array.isArray(json)
    ? json
    : Array.isArray(json?.files)
      ? json.files
      : Array.isArray(json?.recordings)
        ? json.recordings
        : [];
  return list
    .map((f) => {
      if (typeof f === "string") {
        const name = f.split("/").pop() ?? f;
        return { name, url: safeUrl(f.includes("/") ? f : `${FILES_PATH}/${encodeURIComponent(f)}`) };
      }
      if (!f || typeof f !== "object") return null;
      const name = String(
        f.name ?? f.file ?? f.filename ?? (f.path ? String(f.path).split("/").pop() : (f.url ?? "?")),
      );
      const link = f.url ?? f.href ?? `${FILES_PATH}/${encodeURIComponent(name)}`;
      const seconds = num(f.durationSeconds) ?? num(f.duration) ?? num(f.seconds);
      return {
        name,
        url: safeUrl(String(link)),
        bytes: num(f.bytes) ?? num(f.size) ?? num(f.sizeBytes),
        durationMs: num(f.durationMs) ?? (seconds === undefined ? undefined : seconds * 1000),
      };
    })
    .filter((f) => f !== null);
}

/** Recordings still being written, when the list says so (`active: [{file|name, durationMs}]`). */
export function parseActive(json) {
  const list = Array.isArray(json?.active) ? json.active : [];
  return list
    .filter((r) => r && typeof r === "object")
    .map((r) => ({ name: String(r.file ?? r.name ?? r.id ?? "?"), durationMs: num(r.durationMs) }));
}

/** @type {Map<string, HTMLElement>} */
const items = new Map();

/**
 * @param {{name: string, url: string | null, bytes?: number, durationMs?: number}[]} files
 * @param {{name: string, durationMs?: number}[]} active
 */
function render(files, active) {
  const list = $("#recordings-list");
  const rows = [
    ...active.map((r) => ({
      key: `active:${r.name}`,
      name: r.name,
      url: null,
      active: true,
      durationMs: r.durationMs,
    })),
    ...files.map((f) => ({ key: `file:${f.name}`, active: false, ...f })),
  ];
  const keys = new Set(rows.map((r) => r.key));
  for (const [key, li] of items)
    if (!keys.has(key)) {
      li.remove();
      items.delete(key);
    }
  rows.forEach((f, i) => {
    let li = items.get(f.key);
    if (!li) {
      li = h(
        "li",
        {
          class: f.active ? "recording is-active" : "recording",
          dataset: { name: f.name, state: f.active ? "recording" : "saved" },
        },
        h("span", {
          class: "rec-icon",
          role: "img",
          "aria-label": f.active ? "recording now" : "saved",
          title: f.active ? "Recording now" : "Saved",
        }),
        f.url
          ? h("a", { href: f.url, download: f.name, class: "rec-name" }, f.name)
          : h("span", { class: "rec-name" }, f.name),
        h("span", { class: "rec-meta" }),
        f.active ? null : h("span", { class: "rec-level" }),
        f.url
          ? h(
              "button",
              { class: "btn small ghost", type: "button", dataset: { action: "listen", url: f.url } },
              "Listen",
            )
          : null,
      );
      items.set(f.key, li);
    }
    const meta = [
      f.active ? "recording…" : "",
      f.durationMs !== undefined ? fmtDuration(f.durationMs) : "",
      "bytes" in f && f.bytes !== undefined ? fmtBytes(f.bytes) : "",
    ]
      .filter(Boolean)
      .join(" · ");
    setText(/** @type {HTMLElement} */ (li.querySelector(".rec-meta")), meta);
    if (!f.active && f.url) void checkLevel(f.name, f.url, "bytes" in f ? f.bytes : undefined, li);
    if (list.children[i] !== li) list.insertBefore(li, list.children[i] ?? null);
  });
  $("#recordings-empty").hidden = rows.length > 0;
  setText($("#recordings-summary"), files.length ? `${files.length} file${files.length > 1 ? "s" : ""}` : "");
}

// ---- is a recording silent? ---------------------------------------------------------------------------

/** Largest file whose level is measured (about 87 s of 48 kHz stereo). */
const MAX_CHECK_BYTES = 16 * 1024 * 1024;
/** A peak below this (about −72 dBFS) is silence: what a muted or empty source records. */
const SILENT_PEAK = 8;
/** Peak sample of each finished file, by name (null: not measured). @type {Map<string, number | null>} */
const levels = new Map();

/**
 * The issue this answers: a recorder fed by a silent track saved a WAV of zeros and nothing said so. Each
 * finished file (up to MAX_CHECK_BYTES) is fetched once and its peak shown; a silent one is flagged.
 */
async function checkLevel(name, url, bytes, li) {
  if (levels.has(name)) return showLevel(li, levels.get(name) ?? null);
  levels.set(name, null);
  if (bytes !== undefined && bytes > MAX_CHECK_BYTES) return showLevel(li, null);
  let peak = null;
  try {
    const res = await fetch(url, { cache: "no-store" });
    if (res.ok) peak = wavPeak(await res.arrayBuffer());
  } catch {
    peak = null;
  }
  levels.set(name, peak);
  showLevel(li, peak);
}

/** The largest |sample| of a 16-bit PCM WAV file's data chunk, or null when it is not one. */
export function wavPeak(buf) {
  const v = new DataView(buf);
  const tag = (at) =>
    String.fromCharCode(v.getUint8(at), v.getUint8(at + 1), v.getUint8(at + 2), v.getUint8(at + 3));
  if (buf.byteLength < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") return null;
  let at = 12;
  while (at + 8 <= buf.byteLength) {
    const size = v.getUint32(at + 4, true);
    if (tag(at) === "data") {
      const end = Math.min(buf.byteLength, at + 8 + size);
      let peak = 0;
      for (let i = at + 8; i + 1 < end; i += 2) {
        const x = Math.abs(v.getInt16(i, true));
        if (x > peak) peak = x;
      }
      return peak;
    }
    at += 8 + size + (size & 1);
  }
  return null;
}

function showLevel(li, peak) {
  const el = /** @type {HTMLElement | null} */ (li.querySelector(".rec-level"));
  if (!el || peak === null) return;
  const silent = peak < SILENT_PEAK;
  li.dataset.silent = String(silent);
  const db = peak > 0 ? `${Math.round(20 * Math.log10(peak / 32768))} dBFS` : "−∞ dBFS";
  if (silent) {
    if (!el.querySelector(".rec-silent"))
      el.replaceChildren(
        h(
          "span",
          {
            class: "rec-silent",
            title: `Peak ${db}: the source was silent while it recorded (a muted microphone, or a track nothing sent audio into)`,
          },
          "silent",
        ),
      );
  } else setText(el, `peak ${db}`);
}

function onClick(ev) {
  const button = /** @type {HTMLElement} */ (ev.target).closest('button[data-action="listen"]');
  if (!(button instanceof HTMLButtonElement)) return;
  const li = button.closest("li");
  if (!li || li.querySelector("audio")) return;
  const audio = h("audio", { controls: true, autoplay: true, src: button.dataset.url, preload: "auto" });
  li.append(audio);
  button.remove();
}

export function isRecordingsVisible() {
  return visible;
}
