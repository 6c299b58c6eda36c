// WebSocket adapters: the "New adapter" form (any endpoint or a built-in example) and the adapter table,
// refreshed from GET adapters/websocket every second.
import { $, badge, fmtInt, h, randomHex, replaceChildren, setBadge, setText, shortId } from "./dom.js";
import { logError, logInfo, logOk } from "./log.js";
import { playTrack } from "./pulls.js";
import { refreshRecordings } from "./recordings.js";
import { activeSources, ROLE_LABEL, watchSession } from "./sessions.js";
import { api, emit, isPlaying, on, state } from "./state.js";

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
  $("#adapter-source").addEventListener("change", applySource);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    void submit();
  });
  $("#adapters-body").addEventListener("click", onTableClick);
  $("#adapters-close-all").addEventListener("click", () => void closeAll());
  $("#adapters-show-closed").addEventListener("change", render);
  on("sessions", fillSources);
  on("mic", fillSources);
  on("adapters", render);
  on("pulls", render);
  fillSources();
  applyPreset();
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
      "The example speaks the text, sends it in 16 KiB chunks then an empty packet, and hangs up.",
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
}

/** Rebuilds the "Source track" select from the active published tracks. */
function fillSources() {
  const select = /** @type {HTMLSelectElement} */ ($("#adapter-source"));
  const current = select.value;
  const sources = activeSources();
  replaceChildren(
    select,
    sources.length === 0
      ? h("option", { value: "" }, "No active track: publish your microphone first")
      : null,
    sources.map((s) =>
      h(
        "option",
        { value: `${s.sessionId}/${s.trackName}` },
        `${s.trackName} — ${ROLE_LABEL[s.role].toLowerCase()} ${shortId(s.sessionId)}`,
      ),
    ),
    h("option", { value: "manual" }, "Another session id and track name…"),
  );
  if ([...select.options].some((o) => o.value === current && current !== "")) select.value = current;
  else if (state.mic && sources.some((s) => s.sessionId === state.mic?.sessionId))
    select.value = `${state.mic.sessionId}/${state.mic.trackName}`;
  applySource();
}

let lastSource = "";

function applySource() {
  const value = /** @type {HTMLSelectElement} */ ($("#adapter-source")).value;
  $("#egress-manual").hidden = value !== "manual";
  if (value !== lastSource) {
    lastSource = value;
    if (preset() === "recorder") applyPreset();
  }
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
  if ([...select.options].some((o) => o.value === value)) select.value = value;
  else {
    select.value = "manual";
    /** @type {HTMLInputElement} */ ($("#adapter-source-session")).value = from.sessionId;
    /** @type {HTMLInputElement} */ ($("#adapter-source-track")).value = from.trackName;
  }
  applySource();
  $("#adapter-card").scrollIntoView({ behavior: "smooth", block: "start" });
  $("#adapter-url").focus({ preventScroll: true });
}

function formError(message) {
  logError({ name: "form", message }, "New adapter");
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
    const res = await api().call("POST", "adapters/websocket/new", { tracks: items });
    return (res.tracks ?? []).filter((t) => !t.errorCode);
  } catch (err) {
    if (!(/** @type {{reported?: boolean}} */ (err).reported)) logError(err, "Creating the adapter");
    return [];
  } finally {
    void refreshAdapters();
  }
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
            "code",
            { class: "id", title: `adapter ${a.adapterId}\nsession ${a.sessionId}` },
            shortId(a.adapterId),
          ),
        ),
        h(
          "div",
          { class: "endpoint", title: a.endpoint, dataset: { col: "endpoint" } },
          prettyEndpoint(a.endpoint),
        ),
      ),
      cell("state", "State", badge(a.state), h("div", { class: "close-reason" })),
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
  reason.title = a.closeReason ?? "";
  setText(q("frames"), fmtInt(a.frames));
  setText(q("queued"), `${fmtInt(a.queuedMs)} ms`);
  setText(q("underruns"), fmtInt(a.underruns));
  setText(q("drops"), fmtInt(a.droppedFrames));
  setText(q("reconnects"), fmtInt(a.reconnects));
  q("drops").classList.toggle("warn", a.droppedFrames > 0);
  q("reconnects").classList.toggle("warn", a.reconnects > 0);
  const play = /** @type {HTMLButtonElement} */ (row.querySelector('[data-action="play"]'));
  const playing = isPlaying({ sessionId: a.sessionId, trackName: a.trackName });
  play.hidden = a.direction !== "ingest" || a.state === "closed";
  play.disabled = playing;
  setText(play, playing ? "Playing" : "Play");
  /** @type {HTMLElement} */ (row.querySelector('[data-action="close"]')).hidden = a.state === "closed";
}

function render() {
  const body = $("#adapters-body");
  const showClosed = /** @type {HTMLInputElement} */ ($("#adapters-show-closed")).checked;
  const all = [...state.adapters].sort((a, b) => b.createdAt.localeCompare(a.createdAt));
  const shown = all.filter((a) => showClosed || a.state !== "closed");
  const ids = new Set(shown.map((a) => a.adapterId));
  for (const [id, row] of rows)
    if (!ids.has(id)) {
      row.remove();
      rows.delete(id);
    }
  shown.forEach((a, i) => {
    let row = rows.get(a.adapterId);
    if (!row) {
      row = rowElement(a);
      rows.set(a.adapterId, row);
    }
    updateRow(row, a);
    if (body.children[i] !== row) body.insertBefore(row, body.children[i] ?? null);
  });
  const open = all.filter((a) => a.state !== "closed").length;
  const closed = all.length - open;
  $("#adapters-empty").hidden = shown.length > 0;
  $("#adapters-table").classList.toggle("is-empty", shown.length === 0);
  setText($("#adapters-summary"), all.length ? `${open} open${closed ? ` · ${closed} closed` : ""}` : "");
  /** @type {HTMLButtonElement} */ ($("#adapters-close-all")).disabled = open === 0;
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
  for (const row of rows.values()) row.remove();
  rows.clear();
  emit("adapters");
}
