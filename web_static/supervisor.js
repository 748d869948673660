// The supervisor's pages. Agents: the table is drawn from the page blob (agents with their queues,
// pauses and the wall's live state), every button calls /api/supervisor/... and shows the answer,
// then the table is redrawn from the API. Reports: the first visit picks the browser's time zone.

import { api, el, label, page, pauseName, queueName, t } from "./common.js";

const body = document.getElementById("agents-body");
const result = document.getElementById("sup-result");

function show(message, ok) {
  result.hidden = false;
  result.textContent = message;
  result.className = `sup-result ${ok ? "ok" : "error"}`;
}

async function act(button, path, options) {
  button.disabled = true;
  try {
    const answer = await api(path, options);
    show(answer.message, true);
  } catch (error) {
    show(error.message, false);
  }
  try {
    draw(await api("/api/supervisor/agents"));
  } catch (error) {
    show(error.message, false);
  }
}

function queueCell(agent) {
  if (!agent.queues.length) return el("span", { class: "muted" }, t("sup.no_queues"));
  return agent.queues.map((m) => el("span", { class: `member${m.paused ? " paused" : ""}`, dataset: { queue: m.queue } },
    queueName(m.queue),
    m.penalty ? el("small", { class: "muted" }, ` ·${m.penalty}`) : null,
    m.paused ? el("small", { class: "pause-note" }, ` ${t("sup.paused")}${m.reason ? `: ${pauseName(m.reason)}` : ""}`) : null,
    el("button", {
      type: "button", class: "link-button do-remove", title: t("sup.remove", { queue: queueName(m.queue) }),
      "aria-label": t("sup.remove", { queue: queueName(m.queue) }), dataset: { queue: m.queue },
      onclick: (e) => act(e.currentTarget, `/api/supervisor/agents/${agent.id}/queues/${encodeURIComponent(m.queue)}`,
        { method: "DELETE" }),
    }, "×")));
}

function stateCell(agent) {
  const parts = [el("span", { class: "badge" }, agent.logged_in ? t("sup.logged_in") : t("sup.logged_out"))];
  if (agent.paused) parts.push(el("span", { class: "badge state-paused" }, t("sup.paused")));
  if (agent.live) {
    parts.push(el("span", { class: "badge live", title: t("sup.live") },
      `${t("sup.live")}: ${label("live", agent.live.state)}${agent.live.reason ? ` (${pauseName(agent.live.reason)})` : ""}`));
  }
  return parts;
}

function actionsCell(agent) {
  const reason = el("input", { class: "pause-reason", list: "pause-reasons", maxlength: 64, size: 10,
    placeholder: t("sup.reason"), "aria-label": t("sup.reason") });
  const pauseQueue = el("select", { class: "pause-queue", "aria-label": t("sup.queue") },
    el("option", { value: "" }, t("sup.all_queues")),
    agent.queues.map((m) => el("option", { value: m.queue }, queueName(m.queue))));
  const queueBody = () => (pauseQueue.value ? { queue: pauseQueue.value } : {});
  const addQueue = el("select", { class: "add-queue", "aria-label": t("sup.queue") },
    page.queues.map((q) => el("option", { value: q }, queueName(q))));
  const penalty = el("input", { class: "add-penalty", type: "number", min: 0, max: 100, value: 0,
    "aria-label": t("sup.penalty"), title: t("sup.penalty") });
  const base = `/api/supervisor/agents/${agent.id}`;
  const post = (path, body) => (e) => act(e.currentTarget, `${base}/${path}`, { method: "POST", body });
  return el("div", { class: "sup-actions" },
    el("div", { class: "row" }, reason, pauseQueue,
      el("button", { type: "button", class: "do-pause",
        onclick: (e) => post("pause", { ...queueBody(), reason: reason.value.trim() })(e) }, t("sup.pause")),
      el("button", { type: "button", class: "do-unpause", onclick: (e) => post("unpause", queueBody())(e) },
        t("sup.unpause"))),
    el("div", { class: "row" }, addQueue, penalty,
      el("button", { type: "button", class: "do-add",
        onclick: (e) => post("queues", { queue: addQueue.value, penalty: Number(penalty.value) || 0 })(e) },
      t("sup.add")),
      el("button", { type: "button", class: "do-logout", onclick: post("logout") }, t("sup.logout"))),
    el("div", { class: "row" }, ["listen", "whisper", "barge"].map((mode) => el("button", {
      type: "button", class: "do-spy", dataset: { mode }, onclick: post("spy", { mode }),
    }, t(`sup.${mode}`)))),
    agent.clients ? handOverRow(agent, post) : null);
}

// An agent's personal clients to a colleague (or to nobody), as when the agent leaves.
function handOverRow(agent, post) {
  const to = el("select", { class: "hand-over-to", "aria-label": t("sup.hand_over", { count: agent.clients }) },
    page.agents.filter((other) => other.id !== agent.id).map((other) => el("option", { value: other.id }, other.name)),
    el("option", { value: "" }, t("sup.nobody")));
  return el("div", { class: "row" }, el("span", {}, t("sup.hand_over", { count: agent.clients })), to,
    el("button", { type: "button", class: "do-hand-over",
      onclick: (e) => post("clients", { to_operator_id: to.value ? Number(to.value) : null })(e) },
    t("sup.hand_over_go")));
}

function auditRow(entry) {
  return el("tr", { class: `audit-${entry.outcome}` },
    el("td", {}, el("time", { datetime: entry.at }, new Date(entry.at).toLocaleString(page.lang))),
    el("td", {}, entry.actor), el("td", { "data-action": entry.action }, label("audit.action", entry.action)),
    el("td", {}, entry.target),
    el("td", { title: entry.error }, label("audit", entry.outcome), entry.error ? ` — ${entry.error}` : ""));
}

function draw(data) {
  Object.assign(page, data);
  body.replaceChildren(...data.agents.map((agent) => el("tr", { dataset: { login: agent.login, agentId: agent.id } },
    el("td", {}, agent.name, el("div", { class: "muted" }, agent.login)),
    el("td", {}, el("code", {}, agent.interface)),
    el("td", { class: "queues" }, queueCell(agent)),
    el("td", { class: "state" }, stateCell(agent)),
    el("td", {}, actionsCell(agent)))));
  document.getElementById("agents-empty").hidden = data.agents.length > 0;
  document.getElementById("audit-body").replaceChildren(...data.audit.map(auditRow));
}

if (body) draw(page);

// Thresholds: each queue's form is sent as JSON (an empty T means "the queue's own").
for (const form of document.querySelectorAll(".thr-form")) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const limits = {};
    for (const input of form.querySelectorAll("input")) limits[input.name] = input.value === "" ? null : Number(input.value);
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      show((await api(`/api/supervisor/thresholds/${encodeURIComponent(form.dataset.queue)}`,
        { method: "PUT", body: limits })).message, true);
    } catch (error) {
      show(error.message, false);
    }
    button.disabled = false;
  });
}

// The centre's pause reasons: one row each (a stored code cannot change), a blank row for a new
// one, the whole list saved at once in its order.
const reasonsBody = document.getElementById("pause-reasons-body");

function reasonRow(reason) {
  const input = (name, value, attrs = {}) => el("input", { name, value: value ?? "", ...attrs });
  return el("tr", { "data-code": reason.code || null },
    el("td", {}, input("code", reason.code, reason.code ? { readonly: true } : { pattern: "[a-z][a-z0-9_]*", maxlength: 32 })),
    el("td", {}, input("name_ru", reason.name_ru, { maxlength: 64 })),
    el("td", {}, input("name_en", reason.name_en, { maxlength: 64 })),
    el("td", {}, input("limit_minutes", reason.limit_minutes, { type: "number", min: 1, max: 1440 })),
    el("td", {}, el("input", { type: "checkbox", name: "active", checked: reason.active })));
}

function drawReasons(reasons) {
  reasonsBody.replaceChildren(...reasons.map(reasonRow));
}

if (reasonsBody) {
  drawReasons(page.pause_reasons);
  document.getElementById("pause-reason-add").addEventListener("click", () => {
    const row = reasonRow({ code: "", name_ru: "", name_en: "", limit_minutes: null, active: true });
    reasonsBody.append(row);
    row.querySelector("input").focus();
  });
  document.getElementById("pause-reasons-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const reasons = [...reasonsBody.rows]
      .map((row) => {
        const value = (name) => row.querySelector(`[name=${name}]`).value.trim();
        return { code: value("code"), name_ru: value("name_ru"), name_en: value("name_en"),
          limit_minutes: value("limit_minutes") === "" ? null : Number(value("limit_minutes")),
          active: row.querySelector("[name=active]").checked };
      })
      .filter((r) => r.code || r.name_ru || r.name_en); // a blank new row is left out
    try {
      const saved = await api("/api/supervisor/pause-reasons", { method: "PUT", body: { reasons } });
      drawReasons(saved.reasons);
      show(saved.message, true);
    } catch (error) {
      show(error.message, false);
    }
  });
}

// Reports: offered/answered/abandoned and service level per hour of the period (vendored uPlot).
// x is the hour's index, labelled with its "YYYY-MM-DD HH:00" key (already in the chosen zone).
async function drawReportCharts(hours) {
  const { default: uPlot } = await import("/static/vendor/uplot/uPlot.esm.js");
  const xs = hours.map((_, i) => i);
  // Whole-hour ticks at least 90 px apart, so "MM-DD HH:00" labels never overlap.
  const axes = [{ space: 90, incrs: [1, 2, 3, 6, 12, 24, 48, 96, 168],
                  values: (_, ticks) => ticks.map((i) => (hours[i] ? hours[i].key.slice(5) : "")) }, {}];
  const hourSeries = { label: t("rep.hours"), value: (_, i) => (hours[i] ? hours[i].key : "") };
  const make = (id, series, data, y = {}) => {
    const target = document.getElementById(id);
    return new uPlot({ width: Math.max(300, target.clientWidth || 500), height: 220, series: [hourSeries, ...series],
      scales: { x: { time: false }, y }, axes }, data, target);
  };
  const bars = uPlot.paths.bars({ size: [0.6, 30] });
  make("report-chart-calls", [
    { label: t("rep.series.offered"), stroke: "#57606a", width: 2 },
    { label: t("wall.series.answered"), stroke: "#1a7f37", fill: "rgba(26,127,55,.35)", paths: bars },
    { label: t("wall.series.abandoned"), stroke: "#cf222e", fill: "rgba(207,34,46,.35)", paths: bars },
  ], [xs, hours.map((h) => h.offered), hours.map((h) => h.answered), hours.map((h) => h.abandoned)]);
  make("report-chart-sl", [{ label: t("wall.series.service_level"), stroke: "#1f6feb", width: 2, points: { show: true } }],
    [xs, hours.map((h) => h.service_level)], { range: [0, 100] });
  document.body.dataset.charts = "ready";
}

if (document.getElementById("report-chart-calls")) drawReportCharts(page.hours || []);

// Each agent's pause bar: as long as their time paused against the longest, split by reason.
// Sizes are set here, not in style attributes, which the Content-Security-Policy does not allow.
const pauseBars = [...document.querySelectorAll(".pause-bar")];
const longestPause = Math.max(1, ...pauseBars.map((bar) => Number(bar.dataset.seconds)));
for (const bar of pauseBars) {
  bar.style.width = `${(100 * Number(bar.dataset.seconds)) / longestPause}%`;
  for (const seg of bar.children) seg.style.flexGrow = seg.dataset.seconds;
}

const tz = document.getElementById("report-tz");
if (tz && !new URLSearchParams(window.location.search).has("tz")) {
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (zone && zone !== tz.value) {
    tz.value = zone;
    document.getElementById("report-period").submit();
  }
}
