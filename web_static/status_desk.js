// The agent's own status on the desk: Ready, or paused for one of the centre's reasons. The select
// asks the server (PUT /api/me/status); what it shows afterwards is what Asterisk says, pushed over
// the desk's socket as `status` messages (a supervisor's pause or Asterisk's auto-pause shows too).
// Under it, their day so far (GET /api/me/today): calls, talk and pause time, and the board of their
// queues: callers waiting and the longest wait, coloured by the queue's limits, as `board` messages
// tell it (only when a caller joins or leaves; the waits count on here).

import { api, el, formatSeconds, page, pauseName, queueName, t, takePauseReasons, toast, typing } from "./common.js";

const $ = (id) => document.getElementById(id);
const box = $("my-status-box");
const select = $("my-status");
let shown = null; // the status message shown now
// What `p` pauses for: the last of the listed reasons this desk showed, at first the centre's first.
let lastReason = select?.querySelector("optgroup option:not([disabled])")?.value ?? "";
let ticker = null;
let board = {}; // queue → {waiting, oldest, warn, alert}, the last `board` message
let boardTicker = null;
let offset = 0; // this browser's clock minus the server's, seconds (from the socket's hello)

const serverNow = () => Date.now() / 1000 - offset;
export function setServerClock(now) {
  if (typeof now === "number") offset = Date.now() / 1000 - now;
}

const DAY_REFRESH_MS = 5 * 60 * 1000;
const hms = (total) => {
  const s = Math.max(0, Math.round(total));
  return `${Math.floor(s / 3600)}:${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};
const LOGGED_MS = 2000; // the call logger writes an ended call within this

export async function refreshDay() {
  const line = $("my-day");
  if (!line) return;
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    const day = await api(`/api/me/today?tz=${encodeURIComponent(zone)}`);
    line.textContent = t("status.today", { answered: day.answered, talk: hms(day.talk_seconds),
      paused: hms(day.paused_seconds) });
  } catch {
    line.textContent = ""; // a figure we cannot read is left out, never shown stale
  }
}

// After a call ends, once the call log has it.
export function callEnded() {
  setTimeout(refreshDay, LOGGED_MS);
}

export function showStatus(status) {
  if (!box || !status) return;
  if (shown && shown.state !== status.state) refreshDay(); // a pause ended or began: its time changed
  shown = status;
  box.dataset.state = status.state;
  document.body.dataset.agentStatus = status.state;
  const other = $("my-status-other");
  other.hidden = true;
  if (status.state === "paused") {
    const known = [...select.options].some((o) => o.value === status.reason && !o.disabled);
    if (known) {
      select.value = status.reason;
      lastReason = status.reason;
    } else { // a supervisor's own words, or Asterisk's: shown as text, never as markup
      other.textContent = pauseName(status.reason) || t("status.paused");
      other.hidden = false;
      select.value = "other";
    }
  } else {
    select.value = status.state === "out" ? "out" : "ready";
  }
  $("my-status-out").hidden = status.state !== "out";
  const partly = status.state === "paused" && status.paused_in.length < status.queues.length;
  $("status-note").textContent = partly
    ? t("status.partly", { queues: status.paused_in.map(queueName).join(", ") }) : "";
  clearInterval(ticker);
  const timer = $("status-timer");
  timer.textContent = "";
  box.dataset.over = "false";
  timer.title = status.limit ? t("wall.pause_limit", { minutes: status.limit / 60 }) : "";
  if (status.state === "paused" && status.at) {
    const tick = () => {
      const paused = serverNow() - status.at;
      timer.textContent = formatSeconds(paused);
      box.dataset.over = String(Boolean(status.limit) && paused > status.limit); // past the centre's limit
    };
    tick();
    ticker = setInterval(tick, 1000);
  }
  drawBoard();
}

// The centre's reasons changed: the select offers those in use now, by their new names; `p` keeps
// its reason while it is in use, else takes the first.
export function showReasons(reasons) {
  if (!Array.isArray(reasons)) return;
  takePauseReasons(reasons);
  if (!select) return;
  const other = $("my-status-other");
  const active = reasons.filter((r) => r.active);
  other.parentElement.replaceChildren(...active.map((r) => el("option", { value: r.code }, pauseName(r.code))), other);
  if (!active.some((r) => r.code === lastReason)) lastReason = active[0]?.code ?? "";
  if (shown) showStatus(shown);
  else select.value = "ready";
}

export function showBoard(message) {
  board = message.queues ?? {};
  drawBoard();
}

function level(wait, queue) {
  return wait >= queue.alert ? "alert" : wait >= queue.warn ? "warn" : "ok";
}

// One row per queue the agent is in and the board knows; none in no queue.
function drawBoard() {
  const list = $("queue-board");
  if (!list) return;
  clearInterval(boardTicker);
  const mine = (shown?.queues ?? []).filter((queue) => queue in board);
  list.hidden = mine.length === 0;
  const rows = mine.map((name) => {
    const queue = board[name];
    const longest = el("span", { class: "q-longest" });
    const row = el("li", { "data-queue": name, "data-waiting": queue.waiting, "data-level": "ok" },
      el("span", { class: "q-name" }, queueName(name)),
      el("span", { class: "q-waiting", title: t("board.waiting") }, queue.waiting), longest);
    return { queue, row, longest };
  });
  list.replaceChildren(el("li", { class: "q-head" }, el("span", {}, t("board.title")),
    el("span", {}, t("board.waiting")), el("span", {}, t("board.longest"))), ...rows.map((r) => r.row));
  const tick = () => {
    for (const { queue, row, longest } of rows) {
      const wait = queue.oldest === null ? null : serverNow() - queue.oldest;
      longest.textContent = wait === null ? "—" : formatSeconds(wait);
      row.dataset.level = wait === null ? "ok" : level(wait, queue);
    }
  };
  tick();
  if (rows.some((r) => r.queue.oldest !== null)) boardTicker = setInterval(tick, 1000);
}

async function change(state, reason = "") {
  try {
    const done = await api("/api/me/status", { method: "PUT", body: { state, reason } });
    // Asterisk's event follows on the socket; meanwhile show what it accepted.
    showStatus({ ...shown, state: done.state, reason: done.reason, paused_in: shown?.queues ?? [],
      at: serverNow() });
    toast(state === "paused" ? t("status.now_paused", { reason: pauseName(reason) }) : t("status.now_ready"),
      "ok");
  } catch (error) {
    toast(t("status.failed", { error: error.message }), "error");
    showStatus(shown); // the select goes back to the truth
  }
}

export function wireStatus() {
  if (!box) return;
  showStatus(page.status);
  refreshDay();
  setInterval(refreshDay, DAY_REFRESH_MS);
  select.addEventListener("change", () => {
    const value = select.value;
    change(value === "ready" ? "ready" : "paused", value === "ready" ? "" : value);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "p" || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
    event.preventDefault();
    if (shown?.state === "paused") change("ready");
    else if (shown?.state === "ready" && lastReason) change("paused", lastReason);
  });
}
