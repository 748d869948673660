// The agent's own status on the desk: Ready, or paused for one of the centre's reasons. The select
// asks the server (PUT /api/me/status); what it shows afterwards is what Asterisk says, pushed over
// the desk's socket as `status` messages (a supervisor's pause or Asterisk's auto-pause shows too).
// Under it, their day so far (GET /api/me/today): calls, talk and pause time.

import { api, formatSeconds, label, page, queueName, t, toast, typing } from "./common.js";

const $ = (id) => document.getElementById(id);
const box = $("my-status-box");
const select = $("my-status");
let shown = null; // the status message shown now
let lastReason = "break"; // what `p` pauses for: the last of the listed reasons this desk showed
let ticker = null;

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
      other.textContent = label("pause", status.reason) || t("status.paused");
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
      const paused = Date.now() / 1000 - status.at;
      timer.textContent = formatSeconds(paused);
      box.dataset.over = String(Boolean(status.limit) && paused > status.limit); // past the centre's limit
    };
    tick();
    ticker = setInterval(tick, 1000);
  }
}

async function change(state, reason = "") {
  try {
    const done = await api("/api/me/status", { method: "PUT", body: { state, reason } });
    // Asterisk's event follows on the socket; meanwhile show what it accepted.
    showStatus({ ...shown, state: done.state, reason: done.reason, paused_in: shown?.queues ?? [],
      at: Date.now() / 1000 });
    toast(state === "paused" ? t("status.now_paused", { reason: label("pause", reason) }) : t("status.now_ready"),
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
    else if (shown?.state === "ready") change("paused", lastReason);
  });
}
