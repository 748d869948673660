// Shared by every page: the page's JSON blob, translated strings, safe DOM building,
// the API helper (with the CSRF header), click-to-call, the header's language switch and
// the global shortcuts. Text from the server is only ever set with textContent.

const blob = document.getElementById("page-data");
export const page = blob ? JSON.parse(blob.textContent) : { strings: {}, csrf: "" };

export function t(key, values = {}) {
  const text = page.strings[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}

// The translated name of a stored code (segment, disposition, ...); an unknown code shows as is.
export function label(prefix, code) {
  return page.strings[`${prefix}.${code}`] ?? code;
}

// A pause reason's name as the centre calls it (the page's `pause_names`); a supervisor's own words, or
// Asterisk's, show as they are.
export function pauseName(code) {
  return page.pause_names?.[code] ?? label("pause", code);
}

// A supervisor changed the pause reasons (a socket's `pause_reasons` message: every reason, with
// both names): names show as renamed from now on, without a reload.
export function takePauseReasons(reasons) {
  page.pause_names = Object.fromEntries(reasons.map((r) => [r.code, page.lang === "en" ? r.name_en : r.name_ru]));
}

// A queue's department name for people to read; the queue itself stays in data attributes and requests.
export function queueName(queue) {
  return page.queue_names?.[queue] ?? queue;
}

// el("div", {class: "x", onclick: fn}, "text", child) — strings become text nodes.
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = page.csrf;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401) window.location.assign("/login");
    throw new ApiError(response.status, errorText(data) || response.statusText);
  }
  return data;
}

function errorText(data) {
  if (!data || data.detail === undefined) return "";
  if (typeof data.detail === "string") return data.detail;
  return data.detail.map((item) => item.msg).join("; ");
}

let toastTimer = null;
export function toast(message, kind = "info") {
  let box = document.getElementById("toast");
  if (!box) {
    box = el("div", { id: "toast", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  box.textContent = message;
  box.className = `toast toast-${kind} visible`;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("visible"), 4000);
}

export async function dial(e164, display) {
  try {
    await api("/api/dial", { method: "POST", body: { number: e164 } });
    toast(t("dial.calling", { number: display || e164 }), "ok");
  } catch (error) {
    toast(t("dial.failed", { error: error.message }), "error");
  }
}

export function phoneButton(phone) {
  return el("button", {
    type: "button", class: "phone-call", title: t("card.call"), "data-e164": phone.e164,
    onclick: () => dial(phone.e164, phone.display),
  }, el("span", { class: "phone-icon", "aria-hidden": "true" }, "☎"), " ", phone.display || phone.e164);
}

export function formatSeconds(total) {
  if (total === null || total === undefined) return "";
  const s = Math.max(0, Math.floor(total));
  const mm = String(Math.floor(s / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return `${mm}:${ss}`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleString(page.lang === "en" ? "en-GB" : "ru-RU");
}

export function typing(event) {
  const target = event.target;
  return target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName));
}

function toggleHelp(force) {
  const help = document.getElementById("help");
  if (help) help.hidden = force === undefined ? !help.hidden : !force;
}

function wireHeader() {
  const language = document.getElementById("language");
  language?.addEventListener("change", async () => {
    try {
      await api("/api/language", { method: "POST", body: { language: language.value } });
      window.location.reload();
    } catch (error) {
      toast(t("error.generic", { error: error.message }), "error");
    }
  });
  document.getElementById("help-open")?.addEventListener("click", () => toggleHelp(true));
  document.getElementById("help-close")?.addEventListener("click", () => toggleHelp(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape") toggleHelp(false);
    if (typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.key === "/") {
      const search = document.getElementById("search");
      if (search) {
        event.preventDefault();
        search.focus();
        search.select();
      }
    } else if (event.key === "?") {
      event.preventDefault();
      toggleHelp();
    }
  });
}

// Server-rendered times (<time datetime=… data-local>) are UTC; show them in the browser's zone,
// and tell forms that ask for it (input[data-browser-zone]) which zone that is.
function localTimes() {
  for (const node of document.querySelectorAll("time[data-local]")) node.textContent = formatTime(node.dateTime);
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  for (const input of document.querySelectorAll("input[data-browser-zone]")) input.value = zone || "";
}

// Click-to-call on server-rendered numbers (the _phone.html macro): one listener for the page.
function wireDialButtons() {
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[data-dial]") : null;
    if (button) dial(button.dataset.dial, button.textContent.replace("☎", "").trim());
  });
}

// A call's recording (button[data-play] in a /calls row or a timeline entry): the click opens a
// full-width player under the call (a second click closes it), so a page of calls loads no audio
// and only a play reaches the server, which audits it.
function wirePlayButtons() {
  document.addEventListener("click", (event) => {
    const button = event.target instanceof Element ? event.target.closest("button[data-play]") : null;
    if (!button) return;
    const row = button.closest("tr");
    const entry = row ? null : button.closest("li");
    const open = row ? row.nextElementSibling : entry.querySelector(":scope > .player");
    if (open?.classList.contains("player")) {
      open.remove();
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const audio = el("audio", { controls: true, autoplay: true, preload: "auto", src: button.dataset.play });
    const holder = row ? el("td", { colspan: row.cells.length }, audio) : el("div", { class: "player" }, audio);
    audio.addEventListener("error", () => holder.replaceChildren(el("span", { class: "error" }, t("api.no_recording"))));
    if (row) row.after(el("tr", { class: "player" }, holder));
    else entry.append(holder);
    button.setAttribute("aria-expanded", "true");
    (row || entry).dispatchEvent(new CustomEvent("player-opened", { bubbles: true, detail: { holder } }));
  });
}

wireHeader();
wireDialButtons();
wirePlayButtons();
localTimes();
