// WebSocket adapters: the "New adapter" form (any endpoint or a built-in example) and the adapter table,
// refreshed from GET adapters/websocket every second.
import {
  $,
  badge,
  copyButton,
  fmtDuration,
  fmtInt,
  h,
  idWithCopy,
  randomHex,
  replaceChildren,
  setBadge,
  setText,
  shortId,
} from "./dom.js";
import { logError, logInfo, logOk } from "./log.js";
import { playTrack } from "./pulls.js";
import { refreshRecordings } from "./recordings.js";
import { activeSources, ROLE_LABEL, watchSession } from "./sessions.js";
import { api, emit, isPlaying, on, state } from "./state.js";

/** The tts example's limit (src/examples/speech.ts MAX_TEXT_CHARS): longer texts are refused with HTTP 400. */
export const TTS_MAX_CHARS = 1000;
/** Closed adapters shown without "show all closed": the most recently closed ones. */
const RECENT_CLOSED = 3;
/** An ingest adapter whose played-frame count has not moved for this long, with nothing queued, is silent. */
const IDLE_MS = 2500;
/** A microphone below the sound threshold this long is reported silent. */
const MIC_SILENT_MS = 3000;

const DEFAULT_TTS_TEXT =
  "Hello from Patchbay. This voice was synthesized on the server, sent over a WebSocket, " +
  "and reached you over WebRTC.";

/** Built-in example endpoints (served by this server under /examples when examples are on). */
export const EXAMPLES = {
  tts: "/examples/tts",
  recorder: "/examples/recorder",
  echoIn: "/examples/echo/in",
  echoOut: "/examples/echo/out",
};

/**
 * ws:// or wss:// URL of an example path on this server, as the page reaches it, with the app's examples
 * token when the server asks for one (the adapter dials the URL as given, so the token travels in it).
 */
export function exampleUrl(path) {
  const url = `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${path}`;
  if (!state.examplesToken) return url;
  return `${url}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(state.examplesToken)}`;
}

/** Is this adapter endpoint our built-in recorder? */
export function isRecorderEndpoint(endpoint) {
  try {
    const u = new URL(endpoint);
    return u.host === location.host && u.pathname.startsWith(EXAMPLES.recorder);
  } catch {
    return false;
  }
}

/** @type {Map<string, HTMLTableRowElement>} */
const rows = new Map();
/** Per adapter: its frame count as last polled and when it last changed (performance.now()). */
const activity = new Map();
/** The source the user picked in the select ("" = the default: the microphone this page publishes). */
let chosenSource = "";
/** The mic session the default was last applied for: a new publish makes the mic the source again. */
let lastMicSession = "";
let customUrl = "";
let trackNameEdited = false;
let echoRoom = randomHex(4);

// ---- form -------------------------------------------------------------------------------------------------

export function initAdapters() {
  const form = /** @type {HTMLFormElement} */ ($("#adapter-form"));
  const tts = /** @type {HTMLTextAreaElement} */ ($("#tts-text"));
  tts.value = DEFAULT_TTS_TEXT;
  $("#adapter-preset").addEventListener("change", applyPreset);
  for (const r of form.querySelectorAll('input[name="direction"]')) r.addEventListener("change", applyPreset);
  tts.addEventListener("input", applyPreset);
  $("#adapter-url").addEventListener("input", (ev) => {
    if (preset() === "custom") customUrl = /** @type {HTMLInputElement} */ (ev.target).value;
  });
  $("#adapter-track-name").addEventListener("input", () => {
    trackNameEdited = true;
  });
  $("#adapter-source").addEventListener("change", () => {
    chosenSource = /** @type {HTMLSelectElement} */ ($("#adapter-source")).value;
    applySource();
  });
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submit();
  });
  $("#adapters-body").addEventListener("click", onTableClick);
  $("#adapters-close-all").addEventListener("click", () => void closeAll());
  $("#adapters-show-closed").addEventListener("change", render);
  on("sessions", fillSources);
  on("mic", fillSources);
  on("adapters", fillSources);
  on("adapters", render);
  on("pulls", render);
  on("pulls", updateSourceStatus);
  fillSources();
  applyPreset();
  // The mic's level moves between polls: the silence warning follows it twice a second.
  setInterval(updateSourceStatus, 500);
}

/** Enables or disables the built-in examples in the endpoint select (known once signed in). */
export function setExamplesAvailable(available) {
  const group = /** @type {HTMLOptGroupElement} */ ($("#examples-group"));
  group.label = available ? "Built-in examples" : "Built-in examples (not served by this server)";
  for (const o of group.querySelectorAll("option")) o.disabled = !available;
  if (!available && preset() !== "custom") {
    /** @type {HTMLSelectElement} */ ($("#adapter-preset")).value = "custom";
    applyPreset();
  }
}

function preset() {
  return /** @type {"custom"|"tts"|"recorder"|"echo"} */ (
    /** @type {HTMLSelectElement} */ ($("#adapter-preset")).value
  );
}

function direction() {
  const checked = /** @type {HTMLInputElement | null} */ (
    document.querySelector('#adapter-direction input[name="direction"]:checked')
  );
  return /** @type {"ingest"|"egress"} */ (checked?.value ?? "ingest");
}

function setDirection(value) {
  for (const r of /** @type {NodeListOf<HTMLInputElement>} */ (
    document.querySelectorAll('#adapter-direction input[name="direction"]')
  ))
    r.checked = r.value === value;
}

function applyPreset() {
  const p = preset();
  const url = /** @type {HTMLInputElement} */ ($("#adapter-url"));
  const trackName = /** @type {HTMLInputElement} */ ($("#adapter-track-name"));
  const urlField = /** @type {HTMLElement} */ (url.closest(".field"));
  const radios = /** @type {NodeListOf<HTMLInputElement>} */ (
    document.querySelectorAll('#adapter-direction input[name="direction"]')
  );
  $("#tts-text-field").hidden = p !== "tts";
  $("#adapter-direction").hidden = p === "echo";
  for (const r of radios) r.disabled = p !== "custom";
  urlField.hidden = p === "echo";
  const hint = $("#adapter-hint");
  if (p === "tts") {
    setDirection("ingest");
    const text = /** @type {HTMLTextAreaElement} */ ($("#tts-text")).value.trim() || DEFAULT_TTS_TEXT;
    url.value = exampleUrl(`${EXAMPLES.tts}?text=${encodeURIComponent(text)}`);
    setText(
      hint,
      "The example speaks the text and sends the whole clip at once (16 KiB chunks, then an empty packet); " +
        "the server plays it out in real time. The example then keeps the socket open, so the adapter and " +
        "its track stay, silent, until you close them: the adapter's card says “finished”.",
    );
  } else if (p === "recorder") {
    setDirection("egress");
    // The recorder puts `label` into the file name: the source's track name tells the files apart.
    const label = (source()?.trackName ?? "").replace(/[^A-Za-z0-9_-]/g, "").slice(0, 40);
    url.value = exampleUrl(`${EXAMPLES.recorder}${label ? `?label=${label}` : ""}`);
    setText(hint, "Writes one WAV per adapter; the files show up under Recordings.");
  } else if (p === "echo") {
    setText(
      hint,
      `Two adapters in room ${echoRoom}: egress of the source to ${EXAMPLES.echoIn}, ingest from ` +
        `${EXAMPLES.echoOut}; the echo then plays here. Use headphones.`,
    );
  } else {
    url.value = customUrl;
    setText(
      hint,
      direction() === "ingest"
        ? "Your endpoint sends Packet messages (PCM s16le, 48 kHz stereo); they become a new track."
        : "Your endpoint receives the track as Packet messages (PCM s16le, 48 kHz stereo, 20 ms each).",
    );
  }
  const dir = p === "echo" ? "both" : direction();
  $("#ingest-fields").hidden = dir === "egress" || p === "echo";
  $("#egress-fields").hidden = dir === "ingest";
  if (!trackNameEdited) trackName.value = p === "tts" ? "tts" : p === "echo" ? "echo" : "ingest";
  setText($("#adapter-create"), p === "echo" ? "Start echo" : "Create adapter");
  updateTtsNote();
  updateSourceStatus();
}

/** The characters of the text to speak, against the tts example's limit. */
function ttsLength() {
  return /** @type {HTMLTextAreaElement} */ ($("#tts-text")).value.trim().length;
}

function ttsTooLong() {
  return `The text has ${fmtInt(ttsLength())} characters: the tts example speaks at most ${fmtInt(TTS_MAX_CHARS)} characters and refuses longer texts (HTTP 400, “text longer than ${TTS_MAX_CHARS} characters”). Shorten it.`;
}

function updateTtsNote() {
  const note = $("#tts-text-note");
  const n = ttsLength();
  const over = n > TTS_MAX_CHARS;
  note.dataset.over = String(over);
  /** @type {HTMLTextAreaElement} */ ($("#tts-text")).setAttribute("aria-invalid", String(over));
  setText(
    note,
    over
      ? `${fmtInt(n)} / ${fmtInt(TTS_MAX_CHARS)} characters: too long. The tts example speaks at most ${fmtInt(TTS_MAX_CHARS)} characters and refuses longer texts (HTTP 400, “text longer than ${TTS_MAX_CHARS} characters”).`
      : `${fmtInt(n)} / ${fmtInt(TTS_MAX_CHARS)} characters`,
  );
}

/** Is this the built-in tts example saying its text once? (It keeps the socket open after the clip.) */
function isOneShotTts(endpoint) {
  try {
    const u = new URL(endpoint);
    const repeat = (u.searchParams.get("repeat") ?? "").toLowerCase();
    return u.host === location.host && u.pathname === EXAMPLES.tts && repeat !== "1" && repeat !== "true";
  } catch {
    return false;
  }
}

/** The open ingest adapter whose track `src` is, if any. */
function ingestAdapterOf(src) {
  return state.adapters.find(
    (a) =>
      a.direction === "ingest" &&
      a.state !== "closed" &&
      a.sessionId === src.sessionId &&
      a.trackName === src.trackName,
  );
}

function isOwnMic(src) {
  const mic = state.mic;
  return mic !== null && src.sessionId === mic.sessionId && src.trackName === mic.trackName;
}

/**
 * Who publishes a source track, long (for the line under the select) and short (for its option).
 * @param {{sessionId: string, trackName: string, role?: import("./state.js").SessionRole, earlier?: boolean}} src
 */
function publisherOf(src) {
  if (isOwnMic(src))
    return { long: "your microphone, published by this page", short: "your microphone (this page)" };
  const adapter = ingestAdapterOf(src);
  if (adapter)
    return {
      long: `the track of ingest adapter ${shortId(adapter.adapterId)} (endpoint ${prettyEndpoint(adapter.endpoint)})`,
      short: `ingest adapter ${shortId(adapter.adapterId)}`,
    };
  if (src.role === "mic" && src.earlier)
    return {
      long: "a microphone published by an earlier load of this page",
      short: "microphone of an earlier page load",
    };
  if (src.role === "mic")
    return { long: "a microphone published by this page", short: "microphone (this page)" };
  const role = src.role ? ROLE_LABEL[src.role].toLowerCase() : "another";
  return { long: `a track of a session listed as “${role}”`, short: `${role} session` };
}

/**
 * Rebuilds the "Source track" select from the active published tracks. The default is the microphone this
 * page publishes (never whichever track happens to come first); a track the user picked stays picked while it
 * exists.
 */
function fillSources() {
  const select = /** @type {HTMLSelectElement} */ ($("#adapter-source"));
  const sources = activeSources();
  const micSession = state.mic?.sessionId ?? "";
  if (micSession && micSession !== lastMicSession && chosenSource !== "manual") chosenSource = "";
  lastMicSession = micSession;
  const micValue = state.mic ? `${state.mic.sessionId}/${state.mic.trackName}` : "";
  const micListed = micValue !== "" && sources.some((s) => `${s.sessionId}/${s.trackName}` === micValue);
  const options = sources.map((s) => [
    `${s.sessionId}/${s.trackName}`,
    `${s.trackName} — ${publisherOf(s).short} · ${shortId(s.sessionId)}`,
  ]);
  // Rebuilt only when the list changes: replacing the options closes a select the user has open.
  const signature = JSON.stringify([options, micListed, state.mic !== null]);
  if (select.dataset.signature !== signature) {
    select.dataset.signature = signature;
    rebuildSources(select, sources.length, micListed, options);
  }
  const values = [...select.options].map((o) => o.value);
  if (chosenSource && values.includes(chosenSource)) select.value = chosenSource;
  else {
    chosenSource = "";
    select.value = micListed ? micValue : "";
  }
  applySource();
}

function rebuildSources(select, count, micListed, options) {
  replaceChildren(
    select,
    count === 0
      ? h("option", { value: "" }, "No active track: publish your microphone first")
      : micListed
        ? null
        : h(
            "option",
            { value: "" },
            state.mic
              ? "Choose a track (your microphone is connecting…)"
              : "Choose a track, or publish your microphone",
          ),
    options.map(([value, label]) => h("option", { value }, label)),
    h("option", { value: "manual" }, "Another session id and track name…"),
  );
}

let lastSource = "";

function applySource() {
  const value = /** @type {HTMLSelectElement} */ ($("#adapter-source")).value;
  $("#egress-manual").hidden = value !== "manual";
  if (value !== lastSource) {
    lastSource = value;
    if (preset() === "recorder") applyPreset();
  }
  updateSourceStatus();
}

/** Why an ingest adapter's track is silent now (open, nothing queued, no frame played lately), or null. */
function ingestIdle(a) {
  if (a.direction !== "ingest" || a.state !== "open" || a.queuedMs > 0) return null;
  const seen = activity.get(a.adapterId);
  if (!seen) return null;
  const still = performance.now() - seen.changedAt;
  if (still < IDLE_MS) return null;
  return a.frames === 0
    ? { kind: "waiting", text: "its endpoint has sent no audio", stillMs: still }
    : {
        kind: "finished",
        text: `its endpoint sent ${fmtDuration(a.frames * 20)} of audio, all played, and has sent nothing since`,
        stillMs: still,
      };
}

/**
 * Why the chosen source carries silence, or null when it sounds (or cannot be told). Measured where the
 * console can: its own microphone's meter (and mute), an ingest adapter's played-frame counter, the meter of
 * a track playing here.
 */
function silenceOf(src, listed) {
  const what =
    preset() === "echo"
      ? "the echo would send silence"
      : preset() === "recorder"
        ? "the recorder would record silence"
        : "the endpoint would receive silence";
  const mic = state.mic;
  if (mic && isOwnMic(src)) {
    if (!mic.track.enabled) return `Your microphone is muted: ${what}. Unmute it under Microphone.`;
    if (mic.track.readyState === "ended")
      return `Your microphone's input has ended: ${what}. Stop it and publish it again.`;
    const ms = mic.meter.silentForMs();
    if (ms >= MIC_SILENT_MS)
      return `Your microphone has been silent for ${Math.round(ms / 1000)} s (below −70 dB): ${what}. Check its input above, or the system's sound settings.`;
    return null;
  }
  const adapter = ingestAdapterOf(src);
  if (adapter) {
    const idle = ingestIdle(adapter);
    return idle ? `Track ${src.trackName} is silent: ${idle.text}. So ${what}.` : null;
  }
  if (listed?.role === "mic" && listed.earlier)
    return `Track ${src.trackName} is silent: an earlier load of this page published it and nothing sends into it any more, so ${what}. Publish your microphone again.`;
  for (const p of state.pulls.values())
    if (
      !p.ended &&
      p.meter &&
      p.from.sessionId === src.sessionId &&
      p.from.trackName === src.trackName &&
      p.meter.silentForMs() >= MIC_SILENT_MS
    )
      return `Track ${src.trackName} has been silent for ${Math.round(p.meter.silentForMs() / 1000)} s where it plays here: ${what}.`;
  return null;
}

let sourceInfoKey = "";

/** The line naming the chosen source (track, publisher, session) and the warning when it is silent. */
function updateSourceStatus() {
  const info = $("#adapter-source-info");
  const warning = $("#adapter-source-warning");
  const src = $("#egress-fields").hidden ? null : source();
  if (!src?.sessionId || !src.trackName) {
    info.hidden = true;
    warning.hidden = true;
    sourceInfoKey = "";
    return;
  }
  const listed = activeSources().find((s) => s.sessionId === src.sessionId && s.trackName === src.trackName);
  const who = listed ? publisherOf(listed).long : "a track typed in by hand (not listed here)";
  const key = JSON.stringify([src, who]);
  if (key !== sourceInfoKey) {
    sourceInfoKey = key;
    replaceChildren(
      info,
      "Sends ",
      h("b", null, src.trackName),
      ` — ${who}, on session `,
      idWithCopy(src.sessionId, "session id"),
    );
  }
  info.hidden = false;
  const silent = silenceOf(src, listed);
  warning.hidden = !silent;
  setText(warning, silent ?? "");
}

/** The egress source chosen in the form. */
function source() {
  const value = /** @type {HTMLSelectElement} */ ($("#adapter-source")).value;
  if (value === "manual")
    return {
      sessionId: /** @type {HTMLInputElement} */ ($("#adapter-source-session")).value.trim(),
      trackName: /** @type {HTMLInputElement} */ ($("#adapter-source-track")).value.trim(),
    };
  if (!value) return null;
  const slash = value.indexOf("/");
  return { sessionId: value.slice(0, slash), trackName: value.slice(slash + 1) };
}

/** Prefills the form for an egress adapter of `from` (the "Egress…" button of a track). */
export function prefillEgress(from) {
  /** @type {HTMLSelectElement} */ ($("#adapter-preset")).value = "custom";
  setDirection("egress");
  applyPreset();
  const select = /** @type {HTMLSelectElement} */ ($("#adapter-source"));
  const value = `${from.sessionId}/${from.trackName}`;
  if ([...select.options].some((o) => o.value === value)) {
    select.value = value;
    chosenSource = value;
  } else {
    chosenSource = "manual";
    select.value = "manual";
    /** @type {HTMLInputElement} */ ($("#adapter-source-session")).value = from.sessionId;
    /** @type {HTMLInputElement} */ ($("#adapter-source-track")).value = from.trackName;
  }
  applySource();
  $("#adapter-card").scrollIntoView({ behavior: "smooth", block: "start" });
  $("#adapter-url").focus({ preventScroll: true });
}

function formError(message, code = "form") {
  logError({ name: code, message }, "New adapter");
}

async function submit() {
  const button = /** @type {HTMLButtonElement} */ ($("#adapter-create"));
  const label = button.textContent;
  const p = preset();
  const endpoint = /** @type {HTMLInputElement} */ ($("#adapter-url")).value.trim();
  const trackName = /** @type {HTMLInputElement} */ ($("#adapter-track-name")).value.trim();
  const autoplay = /** @type {HTMLInputElement} */ ($("#adapter-autoplay")).checked;
  const dir = direction();
  const src = source();
  if (p !== "echo" && !endpoint) return formError("Enter the endpoint URL (ws:// or wss://).");
  if (p === "tts" && ttsLength() > TTS_MAX_CHARS) return formError(ttsTooLong(), "text_too_long");
  if ((p === "echo" || dir === "egress") && (!src?.sessionId || !src.trackName))
    return formError(
      p === "echo" ? "Publish your microphone first: the echo sends it." : "Choose the track to send.",
    );
  button.disabled = true;
  setText(button, "Connecting…");
  try {
    if (p === "echo" && src) await startEcho(src);
    else if (dir === "ingest") await createIngest(endpoint, trackName || "ingest", autoplay);
    else if (src) await createEgress(src, endpoint);
  } finally {
    button.disabled = false;
    setText(button, label ?? "Create adapter");
  }
}

/** POST adapters/websocket/new with items; returns the successful items (failures are shown by Api). */
async function create(items) {
  try {
    const res = await api().call(
      "POST",
      "adapters/websocket/new",
      { tracks: items },
      { explain: (item, i) => explainRefusal(item, items[i]?.endpoint) },
    );
    return (res.tracks ?? []).filter((t) => !t.errorCode);
  } catch (err) {
    if (!(/** @type {{reported?: boolean}} */ (err).reported)) logError(err, "Creating the adapter");
    return [];
  } finally {
    void refreshAdapters();
  }
}

/**
 * What a refused handshake means. The adapter API passes on the endpoint's HTTP status ("Unexpected server
 * response: 400") but not the body of its answer, which holds the reason; for this server's own examples the
 * console knows their rules and says which one applies.
 * @param {{errorCode?: string, errorDescription?: string}} item
 * @param {string | undefined} endpoint
 */
export function explainRefusal(item, endpoint) {
  if (item.errorCode !== "websocket_handshake_failed" || !endpoint) return undefined;
  const m = /Unexpected server response: (\d{3})/.exec(item.errorDescription ?? "");
  const status = m ? Number(m[1]) : 0;
  let u;
  try {
    u = new URL(endpoint);
  } catch {
    return undefined;
  }
  const own = u.host === location.host && u.pathname.startsWith("/examples/");
  if (!own)
    return status
      ? `the endpoint answered the WebSocket handshake with HTTP ${status} instead of 101; the adapter API does not pass on the body of that answer (its reason): the endpoint's log has it`
      : undefined;
  const name = u.pathname.slice("/examples/".length).split("/")[0];
  const text = (u.searchParams.get("text") ?? "").trim();
  if (name === "tts" && text.length > TTS_MAX_CHARS)
    return `the tts example speaks at most ${fmtInt(TTS_MAX_CHARS)} characters and refused this text of ${fmtInt(text.length)} (HTTP 400, “text longer than ${TTS_MAX_CHARS} characters”)`;
  if (status === 401 || status === 403)
    return "the examples on this server need the app's examples token (?token=…), and it is missing or wrong";
  if (status === 404) return `there is no example endpoint at ${u.pathname}`;
  if (status === 429)
    return `the ${name} example is busy (too many connections, or its limits are reached); try again in a moment`;
  if (status === 503) return "the examples are shutting down";
  if (status === 400 && name === "tts")
    return `the tts example refused its query: text at most ${fmtInt(TTS_MAX_CHARS)} characters, voice like en-us or de, wpm 80–450, repeat 1 or 0, gap 0–60000 ms`;
  if (status === 400) return `the ${name} example refused its query parameters (docs/EXAMPLES.md lists them)`;
  return undefined;
}

async function createIngest(endpoint, trackName, autoplay) {
  const [ok] = await create([{ location: "local", trackName, endpoint, inputCodec: "pcm", mode: "buffer" }]);
  if (!ok) return null;
  logOk(
    `Ingest adapter ${shortId(ok.adapterId)} open`,
    `${endpoint} → track ${ok.trackName} on session ${ok.sessionId}`,
  );
  watchSession(ok.sessionId, "ingest", ok.trackName);
  if (autoplay) await playTrack({ sessionId: ok.sessionId, trackName: ok.trackName });
  return ok;
}

async function createEgress(src, endpoint) {
  const [ok] = await create([
    {
      location: "remote",
      sessionId: src.sessionId,
      trackName: src.trackName,
      endpoint,
      outputCodec: "pcm",
      mode: "stream",
    },
  ]);
  if (!ok) return null;
  logOk(
    `Egress adapter ${shortId(ok.adapterId)} open`,
    `track ${src.trackName} of session ${src.sessionId} → ${endpoint}`,
  );
  watchSession(src.sessionId, "source", "", { automatic: true });
  return ok;
}

/** The echo example: the return path first (ingest from echo/out), then the source into echo/in, then play. */
async function startEcho(src) {
  const room = echoRoom;
  echoRoom = randomHex(4);
  applyPreset();
  const back = await create([
    {
      location: "local",
      trackName: "echo",
      endpoint: exampleUrl(`${EXAMPLES.echoOut}?room=${room}`),
      inputCodec: "pcm",
      mode: "buffer",
    },
  ]);
  if (back.length === 0) return;
  const there = await create([
    {
      location: "remote",
      sessionId: src.sessionId,
      trackName: src.trackName,
      endpoint: exampleUrl(`${EXAMPLES.echoIn}?room=${room}`),
      outputCodec: "pcm",
      mode: "stream",
    },
  ]);
  if (there.length === 0) {
    logInfo("Echo not started", `closing the return adapter ${back[0].adapterId}`);
    await closeAdapters([back[0].adapterId]);
    return;
  }
  logOk(`Echo room ${room} running`, `${src.trackName} → echo → track echo on session ${back[0].sessionId}`);
  watchSession(back[0].sessionId, "ingest", "echo");
  await playTrack({ sessionId: back[0].sessionId, trackName: "echo" });
}

// ---- table ------------------------------------------------------------------------------------------------

/** GET adapters/websocket; the sessions they name join the sessions list. */
export async function refreshAdapters() {
  if (!state.api) return;
  let body;
  try {
    body = await state.api.call("GET", "adapters/websocket");
  } catch {
    return; // shown by Api
  }
  state.adapters = Array.isArray(body.adapters) ? body.adapters : [];
  const now = performance.now();
  for (const a of state.adapters) {
    const seen = activity.get(a.adapterId);
    if (!seen || seen.frames !== a.frames) activity.set(a.adapterId, { frames: a.frames, changedAt: now });
  }
  for (const a of state.adapters) {
    if (a.direction === "ingest") watchSession(a.sessionId, "ingest", a.trackName, { automatic: true });
    else if (a.state !== "closed") watchSession(a.sessionId, "source", "", { automatic: true });
  }
  emit("adapters");
  if (state.adapters.some((a) => isRecorderEndpoint(a.endpoint))) emit("recorder");
}

function prettyEndpoint(endpoint) {
  try {
    const u = new URL(endpoint);
    // The examples token is this app's to keep: the table shows that one is there, not what it is.
    if (u.host === location.host && u.searchParams.has("token")) u.searchParams.set("token", "…");
    const text = `${u.host}${u.pathname}${u.search}`;
    return u.host === location.host ? `${u.pathname}${decodeURIComponent(u.search)}` : text;
  } catch {
    return endpoint;
  }
}

function rowElement(a) {
  const cell = (col, label, ...children) => h("td", { dataset: { col, label } }, ...children);
  return /** @type {HTMLTableRowElement} */ (
    h(
      "tr",
      { dataset: { adapterId: a.adapterId, direction: a.direction } },
      cell(
        "adapter",
        "Adapter",
        h(
          "div",
          { class: "adapter-id" },
          h(
            "span",
            { class: "dir", dataset: { direction: a.direction } },
            a.direction === "ingest" ? "↓ ingest" : "↑ egress",
          ),
          h("span", { class: "track-name" }, a.trackName),
          h(
            "span",
            { class: "id-copy" },
            h(
              "code",
              { class: "id", title: `adapter ${a.adapterId}\nsession ${a.sessionId}` },
              shortId(a.adapterId),
            ),
            copyButton(a.adapterId, "adapter id"),
          ),
        ),
        h(
          "div",
          { class: "endpoint", title: a.endpoint, dataset: { col: "endpoint" } },
          prettyEndpoint(a.endpoint),
        ),
      ),
      cell(
        "state",
        "State",
        badge(a.state),
        h("div", { class: "state-note" }),
        h("div", { class: "close-reason" }),
      ),
      cell("frames", "Frames"),
      cell("queued", "Queued"),
      cell("underruns", "Underruns"),
      cell("drops", "Drops"),
      cell("reconnects", "Reconnects"),
      h(
        "td",
        { class: "row-actions", dataset: { col: "actions" } },
        h(
          "button",
          {
            class: "btn small",
            type: "button",
            dataset: { action: "play" },
            title: "Pull the adapter's track and play it here",
          },
          "Play",
        ),
        h("button", { class: "btn small danger", type: "button", dataset: { action: "close" } }, "Close"),
      ),
    )
  );
}

/** @param {HTMLTableRowElement} row @param {import("./state.js").AdapterStatus} a */
function updateRow(row, a) {
  const q = (col) => /** @type {HTMLElement} */ (row.querySelector(`[data-col="${col}"]`));
  row.dataset.state = a.state;
  setBadge(/** @type {HTMLElement} */ (q("state").querySelector(".badge")), a.state);
  const reason = /** @type {HTMLElement} */ (q("state").querySelector(".close-reason"));
  setText(reason, a.state === "closed" ? (a.closeReason ?? "") : "");
  // An ingest endpoint that has sent everything keeps its socket (and so the track) open: say so, and make
  // Close the obvious next step.
  const idle = ingestIdle(a);
  const note = /** @type {HTMLElement} */ (q("state").querySelector(".state-note"));
  const secs = idle ? `${Math.round(idle.stillMs / 1000)} s` : "";
  setText(
    note,
    !idle
      ? ""
      : idle.kind === "waiting"
        ? `waiting: no audio yet (${secs}) · track silent`
        : isOneShotTts(a.endpoint)
          ? `finished: clip played (${fmtDuration(a.frames * 20)}) · track silent`
          : `finished or paused: nothing new for ${secs} · track silent`,
  );
  note.title = !idle
    ? ""
    : `The endpoint ${idle.kind === "waiting" ? "has sent no audio yet" : `has sent ${fmtDuration(a.frames * 20)} of audio, all played, and nothing for ${secs}`}; its socket is still open, so the track stays, carrying silence. Close the adapter to end the track and its session.`;
  if (idle) row.dataset.idle = idle.kind;
  else delete row.dataset.idle;
  setText(q("frames"), fmtInt(a.frames));
  setText(q("queued"), `${fmtInt(a.queuedMs)} ms`);
  setText(q("underruns"), fmtInt(a.underruns));
  setText(q("drops"), fmtInt(a.droppedFrames));
  setText(q("reconnects"), fmtInt(a.reconnects));
  // Zero counters of trouble fold away on narrow cards (they show, highlighted, once they count).
  q("underruns").dataset.zero = String(!a.underruns);
  q("drops").dataset.zero = String(!a.droppedFrames);
  q("reconnects").dataset.zero = String(!a.reconnects);
  q("drops").classList.toggle("warn", a.droppedFrames > 0);
  q("reconnects").classList.toggle("warn", a.reconnects > 0);
  const play = /** @type {HTMLButtonElement} */ (row.querySelector('[data-action="play"]'));
  const playing = isPlaying({ sessionId: a.sessionId, trackName: a.trackName });
  play.hidden = a.direction !== "ingest" || a.state === "closed";
  play.disabled = playing;
  setText(play, playing ? "Playing" : "Play");
  const close = /** @type {HTMLElement} */ (row.querySelector('[data-action="close"]'));
  close.hidden = a.state === "closed";
  close.title =
    idle?.kind === "finished"
      ? "The endpoint has finished: close the adapter to end its track and session"
      : "Close the adapter (adapters/websocket/close)";
}

function render() {
  const body = $("#adapters-body");
  const showClosed = /** @type {HTMLInputElement} */ ($("#adapters-show-closed")).checked;
  const newest = (a, b) => b.createdAt.localeCompare(a.createdAt);
  const open = state.adapters.filter((a) => a.state !== "closed").sort(newest);
  // Closed adapters pile up (the server keeps their records): the few closed last stay in view (with their
  // reasons), the older ones fold away behind "show all closed".
  const closed = state.adapters
    .filter((a) => a.state === "closed")
    .sort((a, b) => (b.closedAt ?? b.createdAt).localeCompare(a.closedAt ?? a.createdAt));
  const shownClosed = showClosed ? closed : closed.slice(0, RECENT_CLOSED);
  const shown = [...open, ...shownClosed];
  const ids = new Set(shown.map((a) => a.adapterId));
  for (const [id, row] of rows)
    if (!ids.has(id)) {
      row.remove();
      rows.delete(id);
    }
  for (const id of activity.keys()) if (!state.adapters.some((a) => a.adapterId === id)) activity.delete(id);
  shown.forEach((a, i) => {
    let row = rows.get(a.adapterId);
    if (!row) {
      row = rowElement(a);
      rows.set(a.adapterId, row);
    }
    updateRow(row, a);
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] ?? null);
  });
  const folded = closed.length - shownClosed.length;
  $("#adapters-empty").hidden = shown.length > 0;
  $("#adapters-table").classList.toggle("is-empty", shown.length === 0);
  setText(
    $("#adapters-summary"),
    state.adapters.length ? `${open.length} open${closed.length ? ` · ${closed.length} closed` : ""}` : "",
  );
  $("#adapters-closed-toggle").hidden = closed.length <= RECENT_CLOSED && !showClosed;
  setText($("#adapters-closed-label"), showClosed ? `all ${closed.length} closed` : `${folded} older closed`);
  /** @type {HTMLButtonElement} */ ($("#adapters-close-all")).disabled = open.length === 0;
}

function onTableClick(ev) {
  const button = /** @type {HTMLElement} */ (ev.target).closest("button[data-action]");
  if (!(button instanceof HTMLButtonElement)) return;
  const id = /** @type {HTMLElement | null} */ (button.closest("tr"))?.dataset.adapterId;
  const a = state.adapters.find((x) => x.adapterId === id);
  if (!a) return;
  if (button.dataset.action === "close") {
    button.disabled = true;
    void closeAdapters([a.adapterId]).finally(() => {
      button.disabled = false;
    });
  } else if (button.dataset.action === "play")
    void playTrack({ sessionId: a.sessionId, trackName: a.trackName });
}

/** POST adapters/websocket/close, four ids per request (the API's limit). */
export async function closeAdapters(ids) {
  let recorderClosed = false;
  for (let i = 0; i < ids.length; i += 4) {
    const batch = ids.slice(i, i + 4);
    try {
      const res = await api().call("POST", "adapters/websocket/close", {
        tracks: batch.map((adapterId) => ({ adapterId })),
      });
      for (const t of res.tracks ?? [])
        if (
          !t.errorCode &&
          isRecorderEndpoint(state.adapters.find((a) => a.adapterId === t.adapterId)?.endpoint)
        )
          recorderClosed = true;
      for (const t of res.tracks ?? [])
        if (!t.errorCode)
          logOk(
            `Closed adapter ${shortId(t.adapterId)}`,
            t.bytesProcessed === undefined
              ? "it was already closed"
              : `${fmtInt(t.bytesProcessed)} bytes processed`,
          );
    } catch (err) {
      if (!(/** @type {{reported?: boolean}} */ (err).reported)) logError(err, "Closing adapters");
    }
  }
  await refreshAdapters();
  // The recorder writes its WAV once the connection ends: look for it a few times.
  if (recorderClosed)
    for (const ms of [300, 1000, 2500, 5000]) setTimeout(() => void refreshRecordings(), ms);
}

async function closeAll() {
  const open = state.adapters.filter((a) => a.state !== "closed").map((a) => a.adapterId);
  if (open.length > 0) await closeAdapters(open);
}

export function resetAdapters() {
  state.adapters = [];
  activity.clear();
  chosenSource = "";
  lastMicSession = "";
  for (const row of rows.values()) row.remove();
  rows.clear();
  emit("adapters");
}
