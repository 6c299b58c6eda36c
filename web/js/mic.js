// "Microphone": publish the user's microphone as a track, with a live level meter.
import { audioContext, Meter, meterElement } from "./audio.js";
import { $, h, idWithCopy, replaceChildren, setBadge, setText } from "./dom.js";
import { logError, logOk } from "./log.js";
import { closeTrack, outboundAudio, publishMic, waitConnected } from "./rtc.js";
import { refreshSessionNow, watchSession } from "./sessions.js";
import { api, emit, state } from "./state.js";

/** @type {HTMLElement} */
let meterEl;

export function initMic() {
  meterEl = meterElement("Microphone level");
  $("#mic-meter-slot").append(meterEl);
  $("#mic-publish").addEventListener("click", () => void publish());
  $("#mic-stop").addEventListener("click", () => void stopMic());
  $("#mic-mute").addEventListener("click", toggleMute);
  navigator.mediaDevices?.addEventListener?.("devicechange", () => void listDevices());
  void listDevices();
}

async function listDevices() {
  const select = /** @type {HTMLSelectElement} */ ($("#mic-device"));
  let devices = [];
  try {
    devices = (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === "audioinput");
  } catch {
    return;
  }
  const current = select.value;
  const named = devices.filter((d) => d.deviceId && d.deviceId !== "default");
  replaceChildren(
    select,
    h("option", { value: "" }, "Default microphone"),
    named.map((d, i) => h("option", { value: d.deviceId }, d.label || `Microphone ${i + 1}`)),
  );
  if ([...select.options].some((o) => o.value === current)) select.value = current;
}

function setBusy(busy) {
  const button = /** @type {HTMLButtonElement} */ ($("#mic-publish"));
  button.disabled = busy;
  setText(button, busy ? "Publishing…" : "Publish microphone");
}

function showPublished(published) {
  $("#mic-publish").hidden = published;
  $("#mic-stop").hidden = !published;
  $("#mic-mute").hidden = !published;
  /** @type {HTMLInputElement} */ ($("#mic-track-name")).disabled = published;
  /** @type {HTMLSelectElement} */ ($("#mic-device")).disabled = published;
}

async function publish() {
  audioContext();
  const trackName = /** @type {HTMLInputElement} */ ($("#mic-track-name")).value.trim() || "mic";
  const deviceId = /** @type {HTMLSelectElement} */ ($("#mic-device")).value || undefined;
  const badgeEl = $("#mic-state");
  setBusy(true);
  setBadge(badgeEl, "connecting", "connecting");
  try {
    const r = await publishMic(api(), { trackName, deviceId });
    const meter = new Meter(r.stream, meterEl);
    state.mic = { ...r, meter };
    showPublished(true);
    const show = () => {
      if (state.mic?.pc === r.pc) setBadge(badgeEl, r.pc.connectionState, r.pc.connectionState);
    };
    r.pc.addEventListener("connectionstatechange", show);
    show();
    replaceChildren(
      $("#mic-info"),
      `Track “${r.trackName}” on session `,
      idWithCopy(r.sessionId, "session id"),
      ` (mid ${r.mid}). Pull it, record it or echo it.`,
    );
    watchSession(r.sessionId, "mic", r.trackName);
    emit("mic");
    void listDevices();
    await waitConnected(r.pc);
    logOk("Microphone published", `track ${r.trackName} on session ${r.sessionId}`);
    void refreshSessionNow(r.sessionId);
  } catch (err) {
    if (!(/** @type {{reported?: boolean}} */ (err).reported)) logError(err, "Publishing the microphone");
    if (!state.mic) setBadge(badgeEl, "not published", "idle");
    else setBadge(badgeEl, "failed", "failed");
  } finally {
    setBusy(false);
  }
}

function toggleMute() {
  const mic = state.mic;
  if (!mic) return;
  mic.track.enabled = !mic.track.enabled;
  const button = $("#mic-mute");
  button.setAttribute("aria-pressed", String(!mic.track.enabled));
  setText(button, mic.track.enabled ? "Mute" : "Unmute");
  emit("mic");
}

/** Stops publishing: tracks/close (ends the track for every subscriber and egress adapter), then local cleanup. */
export async function stopMic({ callApi = true } = {}) {
  const mic = state.mic;
  if (!mic) return;
  state.mic = null;
  mic.meter.destroy();
  for (const t of mic.stream.getTracks()) t.stop();
  showPublished(false);
  setBadge($("#mic-state"), "not published", "idle");
  setText($("#mic-info"), "Publish your microphone as a track: pull it, record it, echo it.");
  const mute = $("#mic-mute");
  setText(mute, "Mute");
  mute.setAttribute("aria-pressed", "false");
  emit("mic");
  if (!callApi) {
    mic.pc.close();
    return;
  }
  try {
    await closeTrack(api(), mic.sessionId, mic.mid, mic.pc);
    logOk("Microphone stopped", `closed track ${mic.trackName} of session ${mic.sessionId}`);
  } catch (err) {
    if (!(/** @type {{reported?: boolean}} */ (err).reported)) logError(err, "Stopping the microphone");
  }
  await refreshSessionNow(mic.sessionId);
}

/** Packets sent so far (the test hook and the mic line use it). */
export async function micStats() {
  const mic = state.mic;
  if (!mic) return null;
  const out = await outboundAudio(mic.pc).catch(() => null);
  return {
    sessionId: mic.sessionId,
    trackName: mic.trackName,
    connectionState: mic.pc.connectionState,
    level: mic.meter.level,
    maxLevel: mic.meter.max,
    packetsSent: out?.packetsSent ?? 0,
  };
}
