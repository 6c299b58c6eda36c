// "Playing": tracks pulled into this page, each with its own peer connection, audio element and level meter.
import { audioContext, Meter, meterElement } from "./audio.js";
import { badge, copyButton, h, setBadge, setText, shortId } from "./dom.js";
import { logError, logOk } from "./log.js";
import { closeTrack, inboundAudio, pullTrack, waitConnected } from "./rtc.js";
import { refreshSessionNow, watchSession } from "./sessions.js";
import { api, emit, isPlaying, on, state } from "./state.js";

let counter = 0;

export function initPulls() {
  on("pulls", renderSummary);
  on("sessions", updateEnded);
}

/**
 * Pulls `from` and plays it. Call it from a click handler (it resumes the AudioContext).
 * @param {{sessionId: string, trackName: string}} from
 */
export async function playTrack(from) {
  audioContext();
  if (isPlaying(from)) {
    for (const p of state.pulls.values())
      if (p.from.sessionId === from.sessionId && p.from.trackName === from.trackName)
        p.el.scrollIntoView({ block: "nearest", behavior: "smooth" });
    return;
  }
  const id = `pull${++counter}`;
  const meterEl = meterElement(`Level of ${from.trackName}`);
  const stateBadge = badge("connecting", "connecting");
  const audio = /** @type {HTMLAudioElement} */ (h("audio", { autoplay: true }));
  const el = h(
    "article",
    { class: "pull", dataset: { pullId: id, trackName: from.trackName, fromSession: from.sessionId } },
    h(
      "div",
      { class: "pull-head" },
      h("span", { class: "pull-title" }, from.trackName),
      h(
        "code",
        { class: "id", title: `source session ${from.sessionId}` },
        `from ${shortId(from.sessionId)}`,
      ),
      copyButton(from.sessionId, "source session id"),
      stateBadge,
    ),
    meterEl,
    h("div", { class: "pull-stats" }, "waiting for media…"),
    h(
      "div",
      { class: "pull-actions" },
      h(
        "button",
        { class: "btn small", type: "button", dataset: { action: "mute" }, "aria-pressed": "false" },
        "Mute",
      ),
      h("button", { class: "btn small danger", type: "button", dataset: { action: "stop" } }, "Stop"),
    ),
    audio,
  );
  const list = /** @type {HTMLElement} */ (document.getElementById("pulls-list"));
  list.prepend(el);
  /** @type {import("./state.js").Pull} */
  const pull = {
    id,
    from,
    sessionId: "",
    mid: "",
    // Filled in below; the placeholder entry makes isPlaying() true while connecting (no double pulls).
    pc: /** @type {RTCPeerConnection} */ (/** @type {unknown} */ (null)),
    stream: /** @type {MediaStream} */ (/** @type {unknown} */ (null)),
    audio,
    meter: /** @type {import("./audio.js").Meter} */ (/** @type {unknown} */ (null)),
    el,
    stats: null,
    maxAudioLevel: 0,
    ended: false,
  };
  state.pulls.set(id, pull);
  emit("pulls");
  el.addEventListener("click", (ev) => {
    const button = /** @type {HTMLElement} */ (ev.target).closest("button[data-action]");
    if (!(button instanceof HTMLButtonElement)) return;
    if (button.dataset.action === "stop") void stopPull(id);
    if (button.dataset.action === "mute") {
      audio.muted = !audio.muted;
      button.setAttribute("aria-pressed", String(audio.muted));
      setText(button, audio.muted ? "Unmute" : "Mute");
    }
  });
  try {
    const r = await pullTrack(api(), from);
    if (pull.ended) {
      // Stopped while connecting.
      await closeTrack(api(), r.sessionId, r.mid, r.pc).catch(() => {});
      return;
    }
    Object.assign(pull, { pc: r.pc, sessionId: r.sessionId, mid: r.mid, stream: r.stream });
    el.dataset.sessionId = r.sessionId;
    audio.srcObject = r.stream;
    audio.play().catch(() => {
      // Autoplay refused (no user gesture yet): offer a button instead of failing silently.
      const resume = h("button", { class: "btn small primary", type: "button" }, "Click to play");
      resume.addEventListener("click", () => {
        audioContext();
        audio.play().then(() => resume.remove(), logError);
      });
      el.querySelector(".pull-actions")?.prepend(resume);
    });
    pull.meter = new Meter(r.stream, meterEl);
    const show = () => setBadge(stateBadge, r.pc.connectionState, r.pc.connectionState);
    r.pc.addEventListener("connectionstatechange", show);
    show();
    watchSession(r.sessionId, "pull", `plays ${from.trackName}`);
    emit("pulls");
    await waitConnected(r.pc);
    logOk(`Playing ${from.trackName}`, `pulled from session ${from.sessionId} into session ${r.sessionId}`);
  } catch (err) {
    if (!(/** @type {{reported?: boolean}} */ (err).reported)) logError(err, `Playing ${from.trackName}`);
    if (!pull.sessionId) {
      pull.ended = true;
      state.pulls.delete(id);
      el.remove();
      emit("pulls");
    } else setBadge(stateBadge, "failed", "failed");
  }
}

/** Stops a pull: tracks/close on its session, then the peer connection. */
export async function stopPull(id) {
  const pull = state.pulls.get(id);
  if (!pull) return;
  pull.ended = true;
  state.pulls.delete(id);
  pull.meter?.destroy();
  pull.audio.srcObject = null;
  pull.el.remove();
  emit("pulls");
  if (pull.pc) {
    if (sourceEnded(pull)) {
      // Nothing left to close on the server (the track ended with its source): only the peer connection.
      pull.pc.close();
      logOk(`Stopped ${pull.from.trackName}`, "its source had ended");
      await refreshSessionNow(pull.sessionId);
      return;
    }
    try {
      await closeTrack(api(), pull.sessionId, pull.mid, pull.pc);
      logOk(`Stopped ${pull.from.trackName}`, `closed track ${pull.mid} of session ${pull.sessionId}`);
    } catch (err) {
      if (!(/** @type {{reported?: boolean}} */ (err).reported)) logError(err, "Stopping playback");
    }
    await refreshSessionNow(pull.sessionId);
  }
}

/** Stops every pull without calling the API (sign-out: the app may not accept our calls any more). */
export function dropAllPulls() {
  for (const pull of state.pulls.values()) {
    pull.ended = true;
    pull.meter?.destroy();
    pull.pc?.close();
    pull.el.remove();
  }
  state.pulls.clear();
  emit("pulls");
}

/** Reads getStats of every pull (once a second): packets, audioLevel, jitter, losses. */
export async function updatePullStats() {
  await Promise.all(
    [...state.pulls.values()].map(async (pull) => {
      if (!pull.pc || pull.ended) return;
      const s = await inboundAudio(pull.pc).catch(() => null);
      if (!s) return;
      pull.stats = s;
      pull.maxAudioLevel = Math.max(pull.maxAudioLevel, s.audioLevel);
      const line = pull.el.querySelector(".pull-stats");
      if (line)
        setText(
          line,
          `${s.packetsReceived.toLocaleString("en-US")} packets · audioLevel ${s.audioLevel.toFixed(2)} · ` +
            `jitter ${s.jitterMs.toFixed(0)} ms · lost ${s.packetsLost}`,
        );
      pull.el.dataset.audioLevel = s.audioLevel.toFixed(4);
      pull.el.dataset.maxAudioLevel = pull.maxAudioLevel.toFixed(4);
    }),
  );
}

/** Does the pull's session list its track as inactive (its source ended), or is the session gone? */
function sourceEnded(pull) {
  const entry = pull.sessionId ? state.sessions.get(pull.sessionId) : undefined;
  if (!entry || entry.state === "checking") return false;
  const track = entry.tracks.find((t) => t.location === "remote" && t.trackName === pull.from.trackName);
  return entry.state !== "open" || track?.status === "inactive";
}

/** A pulled track whose source ended shows "source ended" (the pull session lists it inactive). */
function updateEnded() {
  for (const pull of state.pulls.values()) {
    if (!pull.sessionId || !state.sessions.has(pull.sessionId)) continue;
    const ended = sourceEnded(pull);
    pull.el.classList.toggle("is-ended", ended);
    const b = /** @type {HTMLElement | null} */ (pull.el.querySelector(".pull-head .badge"));
    if (b && ended) setBadge(b, "source ended", "inactive");
    else if (b && pull.pc) setBadge(b, pull.pc.connectionState, pull.pc.connectionState);
  }
}

function renderSummary() {
  const n = [...state.pulls.values()].filter((p) => !p.ended).length;
  /** @type {HTMLElement} */ (document.getElementById("pulls-empty")).hidden = n > 0;
  setText(
    /** @type {HTMLElement} */ (document.getElementById("pulls-summary")),
    n ? `${n} track${n > 1 ? "s" : ""}` : "",
  );
}
