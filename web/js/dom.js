// Small DOM helpers. Everything that comes from the API or an endpoint is inserted as text, never as HTML.

/**
 * Creates an element. `props`: `class`, `dataset`, `on<event>` handlers, boolean attributes (true → present),
 * anything else as an attribute. Children: nodes or text; null/undefined/false are skipped.
 * @param {string} tag
 * @param {Record<string, unknown> | null} [props]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = String(value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

/** @param {Element} el @param {unknown[]} children */
function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces all children. @param {Element} el @param {...unknown} children */
export function replaceChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * @template {Element} T
 * @param {string} selector
 * @param {ParentNode} [root]
 * @returns {T}
 */
export function $(selector, root = document) {
  const el = root.querySelector(selector);
  if (!el) throw new Error(`console: no element ${selector}`);
  return /** @type {T} */ (el);
}

/** Sets textContent only when it changed (keeps selections and avoids layout work). */
export function setText(el, text) {
  const s = String(text);
  if (el.textContent !== s) el.textContent = s;
}

/** `3f0c1a…9be2`: enough to tell ids apart at a glance; the full id goes in a title. */
export function shortId(id) {
  if (!id) return "";
  return id.length > 12 ? `${id.slice(0, 6)}…${id.slice(-4)}` : id;
}

const intFormat = new Intl.NumberFormat("en-US");
export function fmtInt(n) {
  return typeof n === "number" && Number.isFinite(n) ? intFormat.format(Math.round(n)) : "–";
}

export function fmtBytes(n) {
  if (typeof n !== "number" || !Number.isFinite(n)) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function fmtDuration(ms) {
  if (typeof ms !== "number" || !Number.isFinite(ms)) return "";
  const s = Math.round(ms / 100) / 10;
  return s < 60 ? `${s.toFixed(1)} s` : `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

export function clockTime(date = new Date()) {
  return date.toLocaleTimeString("en-GB", { hour12: false });
}

/** A random lowercase hex string (room names for the echo example). */
export function randomHex(bytes = 4) {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** A status badge: `state` picks the colour through `.badge[data-state]`. */
export function badge(text, state = text) {
  return h("span", { class: "badge", dataset: { state } }, text);
}

/** Updates an existing badge in place. */
export function setBadge(el, text, state = text) {
  setText(el, text);
  if (el.dataset.state !== state) el.dataset.state = state;
}

/** Copies to the clipboard; resolves false where the page may not (then the user can select the text). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    return false;
  }
}

/**
 * A small button that copies `value` (a full id) to the clipboard; the page-wide click handler in app.js
 * does the copying, so buttons made anywhere (tables rebuilt every second) need no listener of their own.
 * @param {string} value
 * @param {string} what e.g. "session id"
 */
export function copyButton(value, what) {
  return h(
    "button",
    {
      class: "copy-btn",
      type: "button",
      dataset: { copy: value },
      title: `Copy the ${what} ${value}`,
      "aria-label": `Copy the ${what}`,
    },
    h("span", { class: "sr-only" }, "Copy"),
  );
}

/** A short id with its full value in the title and a copy button next to it. */
export function idWithCopy(id, what, text = shortId(id)) {
  return h(
    "span",
    { class: "id-copy" },
    h("code", { class: "id", title: `${what} ${id}` }, text),
    copyButton(id, what),
  );
}
