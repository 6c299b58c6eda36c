// "Sessions & tracks": the API has no route that lists an app's sessions, so the console keeps the ones it
// created, those of the app's adapters (from GET adapters/websocket) and any the user asks to watch, and
// refreshes each with GET sessions/{id}.
import { badge, copyButton, h, replaceChildren, setBadge, setText, shortId } from "./dom.js";
import { logError } from "./log.js";
import { api, emit, isPlaying, on, state } from "./state.js";

const STORE_KEY = "patchbay.console.sessions";
const ID_RE = /^[0-9a-f]{32}$/;

/** @type {Record<import("./state.js").SessionRole, string>} */
export const ROLE_LABEL = {
  mic: "Your mic",
  pull: "Player",
  ingest: "Ingest adapter",
  source: "Egress source",
  watched: "Watched",
};
const ROLE_ORDER = ["mic", "ingest", "source", "pull", "watched"];
const STATE_LABEL = {
  checking: "checking…",
  open: "open",
  closed: "closed",
  missing: "not found",
  error: "error",
};

/** @type {{onPlay: (from: {sessionId: string, trackName: string}) => void,
 *   onEgress: (from: {sessionId: string, trackName: string}) => void} | null} */
let handlers = null;
/** @type {Map<string, HTMLElement>} */
const elements = new Map();

/** @param {{onPlay: (from: {sessionId: string, trackName: string}) => void, onEgress: (from: {sessionId: string, trackName: string}) => void}} h */
export function initSessions(h) {
  handlers = h;
  const list = /** @type {HTMLElement} */ (document.getElementById("sessions-list"));
  list.addEventListener("click", onClick);
  document.getElementById("sessions-clear")?.addEventListener("click", clearClosed);
  document.getElementById("sessions-show-closed")?.addEventListener("change", render);
  document.getElementById("watch-form")?.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = /** @type {HTMLInputElement} */ (document.getElementById("watch-session-id"));
    const id = input.value.trim().toLowerCase();
    if (!ID_RE.test(id)) {
      logError(
        { name: "invalid_session_id", message: "a session id is 32 hex characters" },
        "Watch a session",
      );
      return;
    }
    state.dismissed.delete(id);
    watchSession(id, "watched", "");
    input.value = "";
  });
  on("sessions", render);
  on("pulls", render);
}

/** Restores the list kept for this tab (after a reload). */
export function restoreSessions() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE_KEY) ?? "[]");
    if (Array.isArray(saved))
      for (const s of saved)
        if (s && ID_RE.test(s.id) && s.role in ROLE_LABEL)
          // A mic or player session of an earlier load of this page: its peer connection is gone with that
          // page, so nothing sends into it or plays it here any more.
          watchSession(s.id, s.role, String(s.label ?? ""), {
            earlier: s.role === "mic" || s.role === "pull" || s.earlier === true,
          });
  } catch {
    // a damaged entry: start empty
  }
}

function save() {
  const list = [...state.sessions.values()].map(({ id, role, label, earlier }) => ({
    id,
    role,
    label,
    earlier,
  }));
  sessionStorage.setItem(STORE_KEY, JSON.stringify(list));
}

export function forgetAllSessions() {
  state.sessions.clear();
  state.dismissed.clear();
  sessionStorage.removeItem(STORE_KEY);
  for (const el of elements.values()) el.remove();
  elements.clear();
  emit("sessions");
}

/**
 * Adds a session to the list (or upgrades its role: a session seen first as an egress source may turn out
 * to be the user's mic) and fetches it.
 * @param {string} id
 * @param {import("./state.js").SessionRole} role
 * @param {string} label
 * @param {{automatic?: boolean, earlier?: boolean}} [opts] automatic: discovered by a poll, not added by the
 *   user; earlier: created by an earlier load of this page (restored from sessionStorage)
 */
export function watchSession(id, role, label, opts = {}) {
  if (opts.automatic && state.dismissed.has(id)) return;
  const existing = state.sessions.get(id);
  if (existing) {
    if (ROLE_ORDER.indexOf(role) < ROLE_ORDER.indexOf(existing.role)) {
      existing.role = role;
      if (label) existing.label = label;
      save();
      emit("sessions");
    }
    return;
  }
  /** @type {import("./state.js").SessionEntry} */
  const entry = { id, role, label, state: "checking", tracks: [], earlier: opts.earlier === true };
  state.sessions.set(id, entry);
  save();
  emit("sessions");
  void refreshSession(entry).then(() => emit("sessions"));
}

/** GET sessions/{id}: 410 = closed, 404 = never existed in this app; other failures are shown. */
async function refreshSession(entry) {
  try {
    const body = await api().call("GET", `sessions/${entry.id}`, undefined, { quiet: true });
    entry.tracks = Array.isArray(body.tracks) ? body.tracks : [];
    entry.state = "open";
    entry.detail = undefined;
  } catch (err) {
    const e = /** @type {import("./api.js").ApiError} */ (err);
    if (e.status === 410 || (e.status === 404 && e.errorCode === "session_error")) {
      entry.state = e.status === 410 ? "closed" : "missing";
      entry.detail = `${e.errorCode} (${e.status}): ${e.errorDescription}`;
      entry.tracks = entry.tracks.map((t) => ({ ...t, status: "inactive" }));
    } else {
      entry.state = "error";
      entry.detail = `${e.errorCode ?? "error"}: ${e.errorDescription ?? String(err)}`;
      logError(err, `Refreshing session ${shortId(entry.id)}`);
    }
  }
  entry.checkedAt = Date.now();
}

/** Refreshes every session that can still change (closed and unknown ones cannot). */
export async function refreshSessions() {
  const live = [...state.sessions.values()].filter((s) => s.state !== "closed" && s.state !== "missing");
  if (live.length === 0) return;
  await Promise.all(live.map(refreshSession));
  emit("sessions");
}

/** Refreshes one session now (after the console changed it). */
export async function refreshSessionNow(id) {
  const entry = state.sessions.get(id);
  if (!entry) return;
  await refreshSession(entry);
  emit("sessions");
}

function clearClosed() {
  for (const s of [...state.sessions.values()]) {
    if (s.state === "closed" || s.state === "missing") {
      state.sessions.delete(s.id);
      state.dismissed.add(s.id);
    }
  }
  save();
  emit("sessions");
}

function onClick(ev) {
  const button = /** @type {HTMLElement} */ (ev.target).closest("button[data-action]");
  if (!(button instanceof HTMLButtonElement) || !handlers) return;
  const sessionEl = /** @type {HTMLElement | null} */ (button.closest("[data-session-id]"));
  const sessionId = sessionEl?.dataset.sessionId;
  if (!sessionId) return;
  const trackName = /** @type {HTMLElement | null} */ (button.closest("[data-track-name]"))?.dataset
    .trackName;
  const action = button.dataset.action;
  if (action === "forget") {
    state.sessions.delete(sessionId);
    state.dismissed.add(sessionId);
    save();
    emit("sessions");
  } else if (action === "play" && trackName) handlers.onPlay({ sessionId, trackName });
  else if (action === "egress" && trackName) handlers.onEgress({ sessionId, trackName });
}

/** The local (published) tracks that are active now: the sources an egress adapter can use. */
export function activeSources() {
  const out = [];
  const entries = [...state.sessions.values()].sort(
    (a, b) => ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role),
  );
  for (const s of entries) {
    if (s.state !== "open") continue;
    for (const t of s.tracks)
      if (t.location === "local" && t.status === "active")
        out.push({ sessionId: s.id, trackName: t.trackName, role: s.role, earlier: s.earlier === true });
  }
  return out;
}

/** Closed sessions shown without "show all closed": the ones added last. */
const RECENT_CLOSED = 3;

function render() {
  const list = /** @type {HTMLElement} */ (document.getElementById("sessions-list"));
  const isClosed = (s) => s.state === "closed" || s.state === "missing";
  const all = [...state.sessions.values()];
  const closedAll = all.filter(isClosed);
  const showClosed = /** @type {HTMLInputElement | null} */ (document.getElementById("sessions-show-closed"))
    ?.checked;
  // Closed sessions pile up like closed adapters: the last few stay in view, the older ones fold away.
  const keep = new Set((showClosed ? closedAll : closedAll.slice(-RECENT_CLOSED)).map((s) => s.id));
  const entries = all
    .filter((s) => !isClosed(s) || keep.has(s.id))
    .sort((a, b) => ROLE_ORDER.indexOf(a.role) - ROLE_ORDER.indexOf(b.role));
  const shown = new Set(entries.map((s) => s.id));
  for (const [id, el] of elements)
    if (!shown.has(id)) {
      el.remove();
      elements.delete(id);
    }
  entries.forEach((entry, i) => {
    let el = elements.get(entry.id);
    if (!el) {
      el = sessionElement(entry);
      elements.set(entry.id, el);
    }
    updateSession(el, entry);
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] ?? null);
  });
  const open = all.filter((s) => s.state === "open").length;
  const closed = closedAll.length;
  /** @type {HTMLElement} */ (document.getElementById("sessions-empty")).hidden = all.length > 0;
  setText(
    /** @type {HTMLElement} */ (document.getElementById("sessions-summary")),
    all.length ? `${open} open${closed ? ` · ${closed} closed` : ""}` : "",
  );
  const toggle = document.getElementById("sessions-closed-toggle");
  if (toggle) toggle.hidden = closed <= RECENT_CLOSED && !showClosed;
  const label = document.getElementById("sessions-closed-label");
  if (label) setText(label, showClosed ? `all ${closed} closed` : `${closed - keep.size} older closed`);
}

function sessionElement(entry) {
  return h(
    "article",
    { class: "session", dataset: { sessionId: entry.id } },
    h(
      "header",
      { class: "session-head" },
      h("span", { class: "role-chip" }),
      h("code", { class: "id", title: entry.id }, shortId(entry.id)),
      copyButton(entry.id, "session id"),
      h("span", { class: "session-label" }),
      badge("checking…", "checking"),
      h(
        "button",
        {
          class: "icon-btn",
          type: "button",
          dataset: { action: "forget" },
          title: "Remove from this list",
          "aria-label": `Remove session ${shortId(entry.id)} from the list`,
        },
        "×",
      ),
    ),
    h("ul", { class: "tracks" }),
    h("p", { class: "session-detail", hidden: true }),
  );
}

/** @param {HTMLElement} el @param {import("./state.js").SessionEntry} entry */
function updateSession(el, entry) {
  const chip = /** @type {HTMLElement} */ (el.querySelector(".role-chip"));
  setText(chip, `${ROLE_LABEL[entry.role]}${entry.earlier ? " · earlier page" : ""}`);
  chip.dataset.role = entry.role;
  chip.title = entry.earlier
    ? "Created by an earlier load of this page: its peer connection ended with that page"
    : "";
  el.dataset.state = entry.state;
  setText(/** @type {HTMLElement} */ (el.querySelector(".session-label")), entry.label);
  setBadge(/** @type {HTMLElement} */ (el.querySelector(".badge")), STATE_LABEL[entry.state], entry.state);
  const detail = /** @type {HTMLElement} */ (el.querySelector(".session-detail"));
  detail.hidden = !entry.detail;
  setText(detail, entry.detail ?? "");
  const tracksEl = /** @type {HTMLElement} */ (el.querySelector(".tracks"));
  // Rebuilt only when something shown changed, so a button is never replaced under the pointer.
  const rows = entry.tracks.map((t) => ({
    ...t,
    playing: t.location === "local" && isPlaying({ sessionId: entry.id, trackName: t.trackName }),
  }));
  const signature = JSON.stringify([entry.state, rows]);
  if (tracksEl.dataset.signature === signature) return;
  tracksEl.dataset.signature = signature;
  replaceChildren(
    tracksEl,
    rows.length === 0 && entry.state === "open" ? h("li", { class: "track muted" }, "no tracks yet") : null,
    rows.map((t) => trackRow(entry, t)),
  );
}

function trackRow(entry, t) {
  const active = t.status === "active" && entry.state === "open";
  const local = t.location === "local";
  return h(
    "li",
    { class: "track", dataset: { trackName: t.trackName, status: t.status, location: t.location } },
    h(
      "span",
      { class: "track-dir", title: local ? "published on this session" : "pulled into this session" },
      local ? "↑" : "↓",
    ),
    h("span", { class: "track-name" }, t.trackName),
    h(
      "span",
      { class: "track-meta" },
      [local ? "" : `from ${shortId(t.sessionId ?? "")}`, t.mid ? `mid ${t.mid}` : ""]
        .filter(Boolean)
        .join(" · "),
    ),
    badge(t.status),
    local && active
      ? h(
          "span",
          { class: "track-actions" },
          h(
            "button",
            {
              class: "btn small",
              type: "button",
              dataset: { action: "play" },
              disabled: t.playing,
              title: t.playing ? "Already playing in this page" : "Pull this track and play it here",
            },
            t.playing ? "Playing" : "Play",
          ),
          h(
            "button",
            {
              class: "btn small ghost",
              type: "button",
              dataset: { action: "egress" },
              title: "Stream this track to a WebSocket endpoint",
            },
            "Egress…",
          ),
        )
      : null,
  );
}
