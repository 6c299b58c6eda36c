// Patchbay console: entry point. Sign-in, the polling loop, and the test hook `window.patchbayConsole`.
import {
  closeAdapters,
  initAdapters,
  prefillEgress,
  refreshAdapters,
  resetAdapters,
  setExamplesAvailable,
} from "./adapters.js";
import { Api } from "./api.js";
import { $, setText, shortId } from "./dom.js";
import { clearLog, initLog, logError, logInfo, logOk } from "./log.js";
import { initMic, micStats, stopMic } from "./mic.js";
import { dropAllPulls, initPulls, playTrack, updatePullStats } from "./pulls.js";
import { FILES_PATH, initRecordings, refreshRecordings, resetRecordings } from "./recordings.js";
import { forgetAllSessions, initSessions, refreshSessions, restoreSessions } from "./sessions.js";
import { state } from "./state.js";

const CREDS_KEY = "patchbay.console.app";
const POLL_MS = 1000;

/** @type {{examples?: boolean, app?: {appId: string, secret: string} | null, reason?: string} | null} */
let bootstrap = null;
let pollTimer = 0;
let pollBusy = false;
let tick = 0;

// ---- sign-in ----------------------------------------------------------------------------------------------

/** GET /console/bootstrap: the default app when opened from this machine (see src/api/routes/console.ts). */
async function fetchBootstrap() {
  try {
    const res = await fetch("/console/bootstrap", { cache: "no-store", credentials: "omit" });
    if (!res.ok) return null;
    return await res.json();
  } catch {
    return null;
  }
}

function savedCreds() {
  try {
    const c = JSON.parse(sessionStorage.getItem(CREDS_KEY) ?? "null");
    return c && typeof c.appId === "string" && typeof c.secret === "string" ? c : null;
  } catch {
    return null;
  }
}

function showSignIn() {
  $("#console-view").hidden = true;
  $("#whoami").hidden = true;
  $("#signin-view").hidden = false;
  const note = $("#bootstrap-note");
  const id = /** @type {HTMLInputElement} */ ($("#app-id"));
  const secret = /** @type {HTMLInputElement} */ ($("#app-secret"));
  if (bootstrap?.app && !id.value && !secret.value) {
    id.value = bootstrap.app.appId;
    secret.value = bootstrap.app.secret;
    note.hidden = false;
    setText(
      note,
      "Prefilled with this server's default app, because you opened the console on this machine.",
    );
  } else note.hidden = true;
  (id.value ? /** @type {HTMLElement} */ ($("#signin-submit")) : id).focus();
}

function showSignInError(text) {
  const el = $("#signin-error");
  el.hidden = !text;
  el.replaceChildren();
  if (!text) return;
  el.append(text);
}

/**
 * Checks the credentials with an authenticated read (GET adapters/websocket), then opens the console.
 * @param {{appId: string, secret: string}} creds
 */
async function signIn(creds) {
  const submit = /** @type {HTMLButtonElement} */ ($("#signin-submit"));
  submit.disabled = true;
  setText(submit, "Signing in…");
  showSignInError("");
  const client = new Api(creds, { onError: (err) => logError(err) });
  try {
    await client.call("GET", "adapters/websocket", undefined, { quiet: true });
  } catch (err) {
    const e = /** @type {import("./api.js").ApiError} */ (err);
    const code = document.createElement("code");
    code.className = "error-code";
    code.textContent = e.errorCode;
    showSignInError("");
    $("#signin-error").append(code, ` ${e.errorDescription}${e.status ? ` (HTTP ${e.status})` : ""}`);
    $("#signin-error").hidden = false;
    return false;
  } finally {
    submit.disabled = false;
    setText(submit, "Sign in");
  }
  state.api = client;
  sessionStorage.setItem(CREDS_KEY, JSON.stringify(creds));
  $("#signin-view").hidden = true;
  $("#console-view").hidden = false;
  $("#whoami").hidden = false;
  setText($("#app-chip-text"), `app ${shortId(creds.appId)}`);
  $("#app-chip").title = `Signed in to app ${creds.appId}`;
  logOk("Signed in", `app ${creds.appId}`);
  restoreSessions();
  void detectExamples();
  startPolling();
  return true;
}

async function signOut() {
  stopPolling();
  await stopMic({ callApi: false });
  dropAllPulls();
  resetAdapters();
  resetRecordings();
  forgetAllSessions();
  clearLog();
  state.api = null;
  sessionStorage.removeItem(CREDS_KEY);
  /** @type {HTMLInputElement} */ ($("#app-secret")).value = "";
  showSignIn();
}

/** Are the built-in examples served here? The bootstrap says so; without it, probe the recorder's list. */
async function detectExamples() {
  let available = bootstrap?.examples;
  if (available === undefined) {
    try {
      available = (await fetch(FILES_PATH, { cache: "no-store" })).ok;
    } catch {
      available = false;
    }
  }
  state.examples = available;
  setExamplesAvailable(available);
  if (!available) logInfo("Built-in examples are not served here", "use your own WebSocket endpoint URLs");
}

// ---- polling ----------------------------------------------------------------------------------------------

function startPolling() {
  stopPolling();
  tick = 0;
  void poll();
  pollTimer = window.setInterval(() => void poll(), POLL_MS);
}

function stopPolling() {
  if (pollTimer) window.clearInterval(pollTimer);
  pollTimer = 0;
}

/** Adapters and pull stats every second, sessions every two, recordings every three. */
async function poll() {
  if (pollBusy || !state.api || document.hidden) return;
  pollBusy = true;
  try {
    await Promise.all([
      refreshAdapters(),
      updatePullStats(),
      tick % 2 === 0 ? refreshSessions() : null,
      tick % 3 === 0 ? refreshRecordings() : null,
    ]);
  } catch (err) {
    logError(err, "Refreshing");
  } finally {
    tick++;
    pollBusy = false;
  }
}

// ---- test hook --------------------------------------------------------------------------------------------

/** Read-only views for automated tests (test/browser/console.test.ts) and for curious users in devtools. */
const hook = {
  signedIn: () => state.api !== null,
  mic: () => micStats(),
  pulls: () =>
    [...state.pulls.values()].map((p) => ({
      trackName: p.from.trackName,
      fromSessionId: p.from.sessionId,
      sessionId: p.sessionId,
      connectionState: p.pc?.connectionState ?? "new",
      audioLevel: p.stats?.audioLevel ?? 0,
      maxAudioLevel: p.maxAudioLevel,
      packetsReceived: p.stats?.packetsReceived ?? 0,
      meterMax: p.meter?.max ?? 0,
    })),
  adapters: () => state.adapters.map((a) => ({ ...a })),
  sessions: () =>
    [...state.sessions.values()].map((s) => ({ ...s, tracks: s.tracks.map((t) => ({ ...t })) })),
  refresh: () => poll(),
  closeAdapters,
};
Object.defineProperty(window, "patchbayConsole", { value: Object.freeze(hook) });

// ---- start ------------------------------------------------------------------------------------------------

async function main() {
  initLog({
    list: /** @type {HTMLOListElement} */ ($("#activity-log")),
    toasts: $("#toasts"),
    counter: $("#error-count"),
  });
  initSessions({ onPlay: (from) => void playTrack(from), onEgress: prefillEgress });
  initMic();
  initPulls();
  initAdapters();
  initRecordings();

  $("#signin-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const appId = /** @type {HTMLInputElement} */ ($("#app-id")).value.trim();
    const secret = /** @type {HTMLInputElement} */ ($("#app-secret")).value.trim();
    if (!appId || !secret) {
      showSignInError("Enter the app id and its secret.");
      return;
    }
    void signIn({ appId, secret });
  });
  $("#toggle-secret").addEventListener("click", (ev) => {
    const input = /** @type {HTMLInputElement} */ ($("#app-secret"));
    const show = input.type === "password";
    input.type = show ? "text" : "password";
    const button = /** @type {HTMLElement} */ (ev.currentTarget);
    setText(button, show ? "Hide" : "Show");
    button.setAttribute("aria-pressed", String(show));
  });
  $("#sign-out").addEventListener("click", () => void signOut());
  $("#activity-clear").addEventListener("click", clearLog);
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) void poll();
  });

  bootstrap = await fetchBootstrap();
  const saved = savedCreds();
  if (saved) {
    /** @type {HTMLInputElement} */ ($("#app-id")).value = saved.appId;
    if (await signIn(saved)) return;
  }
  showSignIn();
}

void main().finally(() => document.documentElement.classList.add("ready"));
