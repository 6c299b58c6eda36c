// The activity log (every API error as it comes, and what the user did) and error toasts.
import { clockTime, h, setText } from "./dom.js";

const MAX_ENTRIES = 100;
const TOAST_MS = 8000;
/** Toasts kept at once (a wide screen shows them all, a narrow one the newest). */
const MAX_TOASTS = 3;

/** @type {HTMLOListElement | null} */
let list = null;
/** @type {HTMLElement | null} */
let toasts = null;
/** @type {HTMLElement | null} */
let counter = null;
let errorCount = 0;

/** @param {{list: HTMLOListElement, toasts: HTMLElement, counter?: HTMLElement}} els */
export function initLog(els) {
  list = els.list;
  toasts = els.toasts;
  counter = els.counter ?? null;
}

export function clearLog() {
  list?.replaceChildren();
  errorCount = 0;
  if (counter) {
    counter.hidden = true;
    setText(counter, "0");
  }
}

/**
 * Adds an entry; the same entry repeated back to back (a poll failing every second) is counted, not repeated.
 * @param {"ok"|"info"|"error"} kind
 * @param {{title: string, detail?: string, code?: string, where?: string}} entry
 */
function add(kind, entry) {
  if (!list) return;
  const key = JSON.stringify([kind, entry.title, entry.detail, entry.code, entry.where]);
  const first = /** @type {HTMLElement | null} */ (list.firstElementChild);
  if (first && first.dataset.key === key) {
    const n = Number(first.dataset.count ?? "1") + 1;
    first.dataset.count = String(n);
    const badge = first.querySelector(".log-count");
    if (badge) {
      badge.hidden = false;
      setText(badge, `×${n}`);
    }
    const time = first.querySelector("time");
    if (time) setText(time, clockTime());
    return;
  }
  const li = h(
    "li",
    { class: "log-entry", dataset: { kind, key, count: "1" } },
    h("time", null, clockTime()),
    h(
      "div",
      { class: "log-body" },
      h(
        "div",
        { class: "log-title" },
        entry.code ? h("code", { class: "error-code" }, entry.code) : null,
        h("span", null, entry.title),
        entry.where ? h("span", { class: "log-where" }, entry.where) : null,
      ),
      entry.detail ? h("div", { class: "log-detail" }, entry.detail) : null,
    ),
    h("span", { class: "log-count", hidden: true }),
  );
  list.prepend(li);
  while (list.children.length > MAX_ENTRIES) list.lastElementChild?.remove();
}

export function logOk(title, detail) {
  add("ok", { title, detail });
}

export function logInfo(title, detail) {
  add("info", { title, detail });
}

/**
 * An error from the API (ApiError: errorCode, errorDescription, method, path, status) or from the browser.
 * @param {unknown} err
 * @param {string} [context] what the user was doing
 */
export function logError(err, context) {
  const e = /** @type {{errorCode?: string, errorDescription?: string, method?: string, path?: string,
   *  status?: number, message?: string, name?: string}} */ (err ?? {});
  const code = e.errorCode ?? (e.name && e.name !== "Error" ? e.name : undefined);
  const detail = e.errorDescription ?? e.message ?? String(err);
  const where = e.method ? `${e.method} ${e.path}${e.status ? ` → ${e.status}` : ""}` : undefined;
  const title = context ?? (e.method && e.path ? describeCall(e.method, e.path, e) : "Error");
  add("error", { title, detail, code, where });
  errorCount++;
  if (counter) {
    counter.hidden = false;
    setText(counter, String(errorCount));
  }
  toast({ code, title, detail, where });
}

/** What the user was doing, from the API call that failed. */
function describeCall(method, path, err) {
  const item = /** @type {{items?: {trackName?: string, adapterId?: string}[]}} */ (err).items?.[0];
  const what = item?.trackName ? ` “${item.trackName}”` : "";
  const call = `${method} ${path}`;
  if (call === "POST adapters/websocket/new") return `Creating the adapter${what}`;
  if (call === "POST adapters/websocket/close") return "Closing an adapter";
  if (call.startsWith("GET adapters/websocket")) return "Reading the adapters";
  if (call === "POST sessions/new") return "Creating a session";
  if (/^POST sessions\/[^/]+\/tracks\/new$/.test(call)) return `Adding a track${what}`;
  if (/^PUT sessions\/[^/]+\/tracks\/close$/.test(call)) return "Closing a track";
  if (/^PUT sessions\/[^/]+\/renegotiate$/.test(call)) return "Renegotiating";
  if (/^GET sessions\//.test(call)) return "Reading a session";
  return "API error";
}

/** @param {{code?: string, title: string, detail: string, where?: string}} t */
function toast(t) {
  if (!toasts) return;
  const key = JSON.stringify([t.code, t.title, t.detail]);
  for (const el of toasts.children) {
    if (/** @type {HTMLElement} */ (el).dataset.key === key) {
      const n = Number(/** @type {HTMLElement} */ (el).dataset.count) + 1;
      /** @type {HTMLElement} */ (el).dataset.count = String(n);
      const c = el.querySelector(".toast-count");
      if (c) setText(c, `×${n}`);
      return;
    }
  }
  const close = () => {
    el.remove();
    markMore();
  };
  const el = h(
    "div",
    { class: "toast", role: "alert", dataset: { key, count: "1" } },
    h(
      "div",
      { class: "toast-head" },
      t.code ? h("code", { class: "error-code" }, t.code) : null,
      h("strong", { title: t.title }, t.title),
      h("span", { class: "toast-count" }),
      h("span", { class: "toast-more" }),
      h("button", { class: "icon-btn", type: "button", "aria-label": "Dismiss", onclick: close }, "×"),
    ),
    // Clamped to two lines (the whole text is in the title and in Activity).
    h("div", { class: "toast-detail", title: t.detail }, t.detail),
    t.where ? h("div", { class: "toast-where" }, t.where) : null,
  );
  toasts.append(el);
  while (toasts.children.length > MAX_TOASTS) toasts.firstElementChild?.remove();
  markMore();
  setTimeout(close, TOAST_MS);
}

/** A narrow screen shows the newest toast only: it says how many more there are (all are in Activity). */
function markMore() {
  if (!toasts) return;
  const all = [...toasts.children];
  all.forEach((el, i) => {
    const more = el.querySelector(".toast-more");
    if (more) setText(more, i === all.length - 1 && all.length > 1 ? `+${all.length - 1}` : "");
  });
}
