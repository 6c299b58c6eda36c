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
import { $, copyText, idWithCopy, replaceChildren, setText, shortId } from "./dom.js";
import { clearLog, initLog, logError, logInfo, logOk } from "./log.js";
import { initMic, micStats, stopMic } from "./mic.js";
import { dropAllPulls, initPulls, playTrack, updatePullStats } from "./pulls.js";
import { FILES_PATH, initRecordings, refreshRecordings, resetRecordings } from "./recordings.js";
import { forgetAllSessions, initSessions, refreshSessions, restoreSessions } from "./sessions.js";
import { state } from "./state.js";

const CREDS_KEY = "patchbay.console.app";
const POLL_MS = 1000;

/**
 * GET /console/bootstrap (src/api/routes/console.ts): never a secret.
 * @type {{examples?: boolean, examplesToken?: boolean,
 *   defaultApp?: {appId: string, secretStoredIn: string} | null, signIn?: string} | null}
 */
let bootstrap = null;
let pollTimer = 0;
let pollBusy = false;
let tick = 0;

// ---- sign-in ----------------------------------------------------------------------------------------------

/** GET /console/bootstrap: whether examples are served and how to sign in here (no secret, ever). */
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

/**
 * The single-use token of a sign-in link (`/#signin=<token>`, printed by the server at start), taken out of
 * the address bar at once so it stays in neither the history nor a bookmark.
 */
function takeSignInToken() {
  const m = /^#signin=([A-Za-z0-9_-]{20,200})$/.exec(location.hash);
  if (location.hash.startsWith("#signin="))
    history.replaceState(null, "", `${location.pathname}${location.search}`);
  return m ? m[1] : null;
}

/** POST /console/signin: the app the token was issued for, or an error text for the form. */
async function redeemSignInToken(token) {
  try {
    const res = await fetch("/console/signin", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token }),
      cache: "no-store",
      credentials: "omit",
    });
    const body = await res.json().catch(() => ({}));
    if (res.ok && typeof body.appId === "string" && typeof body.secret === "string")
      return { creds: { appId: body.appId, secret: body.secret } };
    return {
      error: `${body.errorCode ?? `HTTP ${res.status}`}: ${body.errorDescription ?? "the sign-in link did not work"}`,
    };
  } catch (err) {
    return { error: `the server did not answer (${err instanceof Error ? err.message : String(err)})` };
  }
}

function showSignIn() {
  $("#console-view").hidden = true;
  $("#whoami").hidden = true;
  $("#signin-view").hidden = false;
  const note = $("#bootstrap-note");
  const id = /** @type {HTMLInputElement} */ ($("#app-id"));
  const secret = /** @type {HTMLInputElement} */ ($("#app-secret"));
  // Only the app id is ever prefilled (this machine's page, loopback server): the secret is typed or
  // pasted, or comes from the one-time link.
  if (bootstrap?.defaultApp && !id.value) id.value = bootstrap.defaultApp.appId;
  note.hidden = !bootstrap?.signIn;
  setText(note, bootstrap?.signIn ?? "");
  (id.value && !secret.value
    ? secret
    : id.value
      ? /** @type {HTMLElement} */ ($("#signin-submit"))
      : id
  ).focus();
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
  /** @type {HTMLInputElement} */ ($("#app-id")).value = creds.appId;
  $("#signin-view").hidden = true;
  $("#console-view").hidden = false;
  $("#whoami").hidden = false;
  replaceChildren($("#app-chip-text"), "app ", idWithCopy(creds.appId, "app id", shortId(creds.appId)));
  $("#app-chip").title = `Signed in to app ${creds.appId}`;
  logOk("Signed in", `app ${creds.appId}`);
  restoreSessions();
  await detectExamples();
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
  state.examplesToken = null;
  sessionStorage.removeItem(CREDS_KEY);
  /** @type {HTMLInputElement} */ ($("#app-secret")).value = "";
  showSignIn();
}

/**
 * Are the built-in examples served here? The bootstrap says so; without it, probe the recorder's list. On a
 * server reachable beyond loopback they need the app's examples token (`?token=` in the endpoint URLs the
 * adapters dial, and on the recordings): fetched with the app's secret.
 */
async function detectExamples() {
  let available = bootstrap?.examples;
  let needsToken = bootstrap?.examplesToken ?? false;
  if (available === undefined) {
    try {
      const res = await fetch(FILES_PATH, { cache: "no-store" });
      available = res.ok || res.status === 401;
      needsToken = res.status === 401;
    } catch {
      available = false;
    }
  }
  state.examplesToken = null;
  if (available && needsToken && state.api) {
    try {
      const res = await fetch(`/examples/token?appId=${encodeURIComponent(state.api.appId)}`, {
        headers: { Authorization: `Bearer ${state.api.secret}` },
        cache: "no-store",
      });
      const body = await res.json();
      if (res.ok && typeof body.token === "string") state.examplesToken = body.token;
      else available = false;
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
      totalAudioEnergy: p.stats?.totalAudioEnergy ?? 0,
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

// ---- copy buttons ---------------------------------------------------------------------------------------

/** Any `button[data-copy]` (see copyButton in dom.js) copies its value; the button says whether it worked. */
function onCopyClick(ev) {
  const button = /** @type {HTMLElement} */ (ev.target).closest?.("button[data-copy]");
  if (!(button instanceof HTMLButtonElement)) return;
  ev.preventDefault();
  ev.stopPropagation();
  const value = button.dataset.copy ?? "";
  void copyText(value).then((ok) => {
    button.dataset.copied = ok ? "yes" : "no";
    if (!ok) logInfo("Copy to the clipboard refused by the browser", value);
    setTimeout(() => delete button.dataset.copied, 1500);
  });
}

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
  document.addEventListener("click", onCopyClick);
  // Leaving (reload, navigation, closing the tab): end our peer connections now, so the server closes the
  // mic and player sessions at once instead of keeping them "open" until their transport times out.
  window.addEventListener("pagehide", () => {
    state.mic?.pc.close();
    for (const p of state.pulls.values()) p.pc?.close();
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) void poll();
  });

  const linkToken = takeSignInToken();
  bootstrap = await fetchBootstrap();
  if (linkToken) {
    const got = await redeemSignInToken(linkToken);
    if (got.creds && (await signIn(got.creds))) return;
    showSignIn();
    if (got.error) showSignInError(got.error);
    return;
  }
  const saved = savedCreds();
  if (saved) {
    /** @type {HTMLInputElement} */ ($("#app-id")).value = saved.appId;
    if (await signIn(saved)) return;
  }
  showSignIn();
}

void main().finally(() => document.documentElement.classList.add("ready"));
