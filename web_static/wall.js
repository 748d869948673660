// The supervisor wall: listens on /ws/wall and draws the latest snapshot, big or as tables.
// Waits and "for how long" tick here every second from the snapshot's epoch times (corrected
// for this machine's clock), so the server only sends when something changed.
// Colours come from each queue's thresholds in the snapshot; text is only set with textContent.
// Every wall gets the queues (`wall`); the per-agent table (`wall_agents`) comes only after this
// page told the server `{"view": "table"}`, so big-number screens don't pay for it.

import uPlot from "/static/vendor/uplot/uPlot.esm.js";
import { el, formatSeconds, page, pauseName, queueName, t, takePauseReasons } from "/static/common.js";

const view = {
  big: document.getElementById("wall-big"),
  table: document.getElementById("wall-table"),
  queues: document.getElementById("queues-table"),
  agents: document.getElementById("agents-table"),
  waiting: document.getElementById("waiting-table"),
  toggle: document.getElementById("view-toggle"),
  status: document.getElementById("wall-status"),
  banner: document.getElementById("wall-banner"),
  chartQueue: document.getElementById("chart-queue"),
};
const STATES = ["available", "ringing", "on_call", "wrap_up", "paused", "offline"];
let snapshot = null;
let agents = null; // the latest `wall_agents` message, while the table is shown
let socket = null;
let offset = 0; // this machine's clock minus the server's, seconds
let tableView = localStorage.getItem("wall.view") === "table";

const now = () => Date.now() / 1000 - offset;

function level(value, warn, alert, higherIsWorse = true) {
  if (value === null || value === undefined) return "ok";
  const [v, w, a] = higherIsWorse ? [value, warn, alert] : [-value, -warn, -alert];
  return v >= a ? "alert" : v >= w ? "warn" : "ok";
}

function pct(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value)}%`;
}

function secs(value) {
  return value === null || value === undefined ? "—" : formatSeconds(value);
}

function waitOf(caller, at) {
  return Math.max(0, at - caller.joined);
}

function longestWait(queue, at) {
  return queue.waiting.reduce((longest, c) => Math.max(longest, waitOf(c, at)), 0);
}

function clientLabel(caller) {
  // The number as people write it; a withheld one says so, in words.
  const who = caller.client ? caller.client.name : caller.caller_name || caller.display || t("unknown.hidden");
  return [who, caller.client ? el("span", { class: "segment" }, t(`segment.${caller.client.segment}`)) : null];
}

function figure(name, value, key, lvl = "ok") {
  return el("div", { class: `figure level-${lvl}`, "data-figure": key },
    el("span", { class: "value" }, value), el("span", { class: "name" }, name));
}

function queueTile(queue, at) {
  const th = queue.thresholds;
  const longest = longestWait(queue, at);
  const reasons = Object.entries(queue.paused_reasons)
    .map(([reason, n]) => `${reason ? pauseName(reason) : t("wall.no_reason")} ${n}`).join(", ");
  return el("article", { class: "queue-tile", "data-queue": queue.name },
    el("h2", {}, queueName(queue.name)),
    el("div", { class: "figures" },
      figure(t("wall.waiting"), queue.waiting.length, "waiting"),
      figure(t("wall.longest"), formatSeconds(longest), "longest_wait",
        level(longest, th.longest_wait_warn, th.longest_wait_alert)),
      figure(`${t("wall.service_level")} (${t("wall.service_level_in", { seconds: queue.service_seconds })})`,
        pct(queue.service_level), "service_level",
        level(queue.service_level, th.service_level_target, th.service_level_target - 10, false)),
      figure(t("wall.answered"), queue.answered, "answered"),
      figure(t("wall.abandon_rate"), `${queue.abandoned} · ${pct(queue.abandon_rate)}`, "abandoned",
        level(queue.abandon_rate, th.abandon_rate_warn, th.abandon_rate_alert)),
      figure(`${t("wall.asa")} / ${t("wall.aht")}`, `${secs(queue.asa)} / ${secs(queue.aht)}`, "asa_aht")),
    el("div", { class: "agent-counts" },
      el("span", { "data-count": "logged_in" }, t("wall.logged_in"), " ", el("b", {}, queue.agents.logged_in)),
      STATES.map((state) => el("span", { class: `state-${state}`, "data-count": state },
        t(`wall.state.${state}`), " ", el("b", {}, queue.agents[state])))),
    reasons ? el("div", { class: "muted", "data-reasons": "" }, `${t("wall.state.paused")}: ${reasons}`) : null,
    el("ul", { class: "callers" }, queue.waiting.length === 0
      ? el("li", { class: "muted" }, t("wall.no_callers"))
      : queue.waiting.map((c) => el("li", { "data-linkedid": c.linkedid },
        el("span", {}, clientLabel(c)), el("span", {}, formatSeconds(waitOf(c, at)))))));
}

function row(cells, attrs = {}) {
  return el("tr", attrs, cells.map((cell) => (cell instanceof Node && cell.tagName === "TD" ? cell : el("td", {}, cell))));
}

function head(names) {
  return el("tr", {}, names.map((name) => el("th", { scope: "col" }, name)));
}

function drawTables(snap, at) {
  view.queues.replaceChildren(
    head([t("wall.queue"), t("wall.waiting"), t("wall.longest"), t("wall.service_level"), t("wall.answered"),
      t("wall.abandoned"), t("wall.abandon_rate"), t("wall.asa"), t("wall.aht"), t("wall.logged_in"),
      ...STATES.map((s) => t(`wall.state.${s}`))]),
    ...snap.queues.map((q) => {
      const th = q.thresholds;
      const longest = longestWait(q, at);
      return row([queueName(q.name), q.waiting.length,
        el("td", { class: `level-${level(longest, th.longest_wait_warn, th.longest_wait_alert)}` }, formatSeconds(longest)),
        el("td", { class: `level-${level(q.service_level, th.service_level_target, th.service_level_target - 10, false)}` },
          pct(q.service_level)),
        q.answered, q.abandoned, pct(q.abandon_rate), secs(q.asa), secs(q.aht), q.agents.logged_in,
        ...STATES.map((s) => q.agents[s])], { "data-queue": q.name });
    }));
  view.agents.replaceChildren(
    head([t("wall.agent"), t("wall.state"), t("wall.for"), t("wall.call"), t("wall.handled"), t("wall.talk"),
      t("wall.pause")]),
    ...(agents ? agents.agents : []).map((a) => {
      const call = a.call || a.rings[0] || null;
      const talkNow = a.call ? at - a.call.since : 0;
      const inState = a.since ? at - a.since : 0;
      const limit = a.state === "paused" ? snap.pause_limits?.[a.reason] : undefined;
      const over = Boolean(limit) && inState > limit; // a pause past the centre's limit for its reason
      return row([a.name,
        el("td", { class: `state-${a.state}`, "data-state": a.state },
          t(`wall.state.${a.state}`), a.reason ? ` (${pauseName(a.reason)})` : ""),
        el("td", { class: over ? "level-alert" : null, "data-over": over ? "" : null,
          title: limit ? t("wall.pause_limit", { minutes: limit / 60 }) : null }, formatSeconds(inState)),
        call ? clientLabel(call) : "",
        a.handled_today, formatSeconds(a.talk_today - (a.call ? a.call.talk : 0) + talkNow),
        formatSeconds(a.pause_today + (a.state === "paused" ? at - agents.at : 0))], { "data-interface": a.interface });
    }));
  const waiting = snap.queues.flatMap((q) => q.waiting.map((c) => [q.name, c]));
  view.waiting.replaceChildren(
    head([t("wall.queue"), t("wall.caller"), t("wall.wait")]),
    ...waiting.map(([name, c]) => row([queueName(name), clientLabel(c), formatSeconds(waitOf(c, at))], { "data-linkedid": c.linkedid })));
}

function draw() {
  if (!snapshot) return;
  const at = now();
  if (tableView) drawTables(snapshot, at);
  else view.big.replaceChildren(...snapshot.queues.map((q) => queueTile(q, at)));
  view.status.textContent = t("wall.updated", {
    time: new Date(snapshot.at * 1000).toLocaleTimeString(page.lang === "en" ? "en-GB" : "ru-RU"),
  });
}

function setView(table) {
  tableView = table;
  localStorage.setItem("wall.view", table ? "table" : "big");
  view.table.hidden = !table;
  view.big.hidden = table;
  view.toggle.textContent = table ? t("wall.view_big") : t("wall.view_table");
  view.toggle.setAttribute("aria-pressed", String(table));
  tellView();
  draw();
}

function tellView() {
  if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ view: tableView ? "table" : "big" }));
}

// ---- charts (uPlot, vendored) -----------------------------------------------------------

const charts = {};

function chartIntervals(snap) {
  const chosen = view.chartQueue.value;
  const names = snap.queues.map((q) => q.name);
  if (names.join() !== [...view.chartQueue.options].slice(1).map((o) => o.value).join()) {
    view.chartQueue.replaceChildren(el("option", { value: "" }, t("wall.totals")),
      ...names.map((name) => el("option", { value: name }, queueName(name))));
    view.chartQueue.value = names.includes(chosen) ? chosen : "";
  }
  const queue = snap.queues.find((q) => q.name === view.chartQueue.value);
  return queue ? queue.intervals : snap.intervals;
}

function series(snap) {
  const step = 15 * 60;
  const last = Math.floor((snap.at - snap.day_start) / step);
  const byStart = new Map(chartIntervals(snap).map((i) => [Math.round(i.start), i]));
  const xs = [], answered = [], abandoned = [], sl = [];
  for (let i = 0; i <= last; i++) {
    const start = snap.day_start + i * step;
    const item = byStart.get(Math.round(start));
    xs.push(start);
    answered.push(item ? item.answered : 0);
    abandoned.push(item ? item.abandoned : 0);
    sl.push(item ? item.service_level : null);
  }
  return { xs, answered, abandoned, sl };
}

// Today's 15-minute intervals in the browser's zone, on a 24-hour clock in the page's language.
const clock = new Intl.DateTimeFormat(page.lang, { hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
const hhmm = (ts) => (ts === null || ts === undefined ? "—" : clock.format(new Date(ts * 1000)));
const timeSeries = { label: t("wall.series.time"), value: (_, ts) => hhmm(ts) };
const timeAxis = { space: 60, values: (_, ticks) => ticks.map(hhmm) };

function chart(id, seriesSpec, data, yRange = null) {
  const target = document.getElementById(id);
  const width = Math.max(300, target.clientWidth || 400);
  if (!charts[id]) {
    const scales = { x: { time: true }, ...(yRange ? { y: { range: yRange } } : {}) };
    charts[id] = new uPlot({ width, height: 220, series: [timeSeries, ...seriesSpec], scales, axes: [timeAxis, {}] },
      data, target);
  } else {
    charts[id].setData(data);
  }
}

function drawCharts(snap) {
  const s = series(snap);
  const bars = uPlot.paths.bars({ size: [0.6, 40] });
  chart("chart-calls", [
    { label: t("wall.series.answered"), stroke: "#1a7f37", fill: "rgba(26,127,55,.35)", paths: bars },
    { label: t("wall.series.abandoned"), stroke: "#cf222e", fill: "rgba(207,34,46,.35)", paths: bars },
  ], [s.xs, s.answered, s.abandoned]);
  chart("chart-sl", [
    { label: t("wall.series.service_level"), stroke: "#1f6feb", width: 2, points: { show: true }, spanGaps: false },
  ], [s.xs, s.sl], [0, 100]);
}

// ---- the socket, reconnecting with backoff -------------------------------------------------

let backoff = 500;

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${window.location.host}/ws/wall`);
  socket.addEventListener("open", tellView);
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "wall_agents") {
      agents = message;
      if (tableView) draw();
      return;
    }
    if (message.type === "pause_reasons") { // renamed or new reasons, named at once
      takePauseReasons(message.reasons);
      if (snapshot) draw();
      return;
    }
    if (message.type !== "wall") return;
    backoff = 500;
    view.banner.hidden = true;
    offset = Date.now() / 1000 - message.at;
    snapshot = message;
    draw();
    drawCharts(message);
    document.body.dataset.socket = "ready";
    document.body.dataset.wallAt = String(message.at);
  });
  socket.addEventListener("close", (event) => {
    document.body.dataset.socket = "closed";
    if (event.code === 4401) {
      window.location.assign("/login");
      return;
    }
    if (event.code === 4403) return; // not allowed: the page itself would have said 403
    view.banner.hidden = false;
    const delay = backoff + Math.random() * 250;
    backoff = Math.min(backoff * 2, 15000);
    setTimeout(connect, delay);
  });
}

view.toggle.addEventListener("click", () => setView(!tableView));
view.chartQueue.addEventListener("change", () => snapshot && drawCharts(snapshot));
setView(tableView);
setInterval(draw, 1000);
connect();
