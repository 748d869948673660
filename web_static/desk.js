// The operator's desk: listens on /ws/desk, pops the caller's card while the phone rings,
// follows the call's state, and saves the after-call note for the client the operator chose
// (for a campaign call, the disposition form of campaign_desk.js instead).

import { api, el, formatSeconds, label, page, queueName, t, toast, typing } from "./common.js";
import { addPlayButtons, newRequest, renderCard, segmentBadge } from "./card.js";
import {
  dispositionOpen, loadCampaigns, pickDisposition, saveDisposition, showCampaignCall, wirePanel,
} from "./campaign_desk.js";
import { callEnded, setServerClock, showBoard, showReasons, showStatus, wireStatus } from "./status_desk.js";

const $ = (id) => document.getElementById(id);
const view = {
  state: $("call-state"), timer: $("call-timer"), caller: $("caller-line"), queue: $("call-queue"),
  card: $("card-area"), form: $("note-form"), note: $("note"), disposition: $("disposition"),
  save: $("save-note"), target: $("note-target"), banner: $("connection"),
  transfer: $("transfer-form"), transferTo: $("transfer-department"),
  consult: $("transfer-consult"), consultLabel: $("transfer-consult-label"),
};

let call = null; // {linkedid, queue, callerNum, callerName, card, campaign, state, since, clientId, mine}
let ticker = null;

// ---- call state -----------------------------------------------------------------------

function setState(state, { restartTimer = false, frozenSeconds = null } = {}) {
  call.state = state;
  view.state.textContent = t(`state.${state}`);
  view.state.className = `call-state state-${state}`;
  document.body.dataset.callState = state;
  showTransfer(state === "talking");
  if (restartTimer) call.since = restartTimer === true ? Date.now() : restartTimer;
  clearInterval(ticker);
  ticker = null;
  if (state === "ringing" || state === "talking") {
    const tick = () => { view.timer.textContent = formatSeconds((Date.now() - call.since) / 1000); };
    tick();
    ticker = setInterval(tick, 1000);
  } else if (frozenSeconds !== null && frozenSeconds !== undefined) {
    view.timer.textContent = formatSeconds(frozenSeconds);
  }
}

// A message replayed after a reload started its timer back then, not now (server time, in s).
const sinceOf = (message) => (message.replayed && message.at ? message.at * 1000 : true);

function onPop(message) {
  // After a consultation the colleague's desk pops the same call again: keep what they wrote.
  const again = call && call.linkedid === message.linkedid ? call : null;
  call = {
    linkedid: message.linkedid, queue: message.queue, callerNum: message.caller_num,
    callerName: message.caller_name, card: message.card, campaign: message.campaign || null,
    since: Date.now(), clientId: null,
  };
  const caller = message.card.caller;
  const number = caller.display || t("unknown.hidden");
  view.caller.replaceChildren(...[ // a dialler call has no caller name: nothing, not "null"
    message.caller_name ? el("span", { class: "caller-name", id: "caller-name" }, message.caller_name) : null,
    el("span", { class: "caller-number" }, number)].filter(Boolean));
  view.queue.textContent = message.queue ? `${t("desk.queue")}: ${queueName(message.queue)}` : "";
  view.form.hidden = showCampaignCall(call.campaign, Boolean(again)); // a campaign call has its own form
  view.save.disabled = false;
  setState("ringing", { restartTimer: sinceOf(message) });
  const matches = message.card.matches;
  if (again) {
    call.since = again.since;
    const chosen = matches.find((client) => client.id === again.clientId);
    if (chosen) {
      chooseClient(chosen, matches.length > 1);
      return;
    }
  } else {
    view.note.value = "";
    view.disposition.selectedIndex = 0;
  }
  if (matches.length === 1) chooseClient(matches[0], false);
  else if (matches.length === 0) showNewCaller(caller);
  else showChooser(matches);
}

function onCallState(message) {
  if (!call || message.linkedid !== call.linkedid) return;
  switch (message.state) {
    case "ring_stopped":
      if (call.state === "ringing") setState("ring_stopped");
      break;
    case "answered":
      setState(message.mine ? "talking" : "answered_elsewhere", { restartTimer: sinceOf(message) });
      break;
    case "abandoned":
      setState("abandoned", { frozenSeconds: message.wait_seconds });
      break;
    case "transferred":
      setState("transferred", { frozenSeconds: (Date.now() - call.since) / 1000 });
      break;
    case "ended":
      if (call.state === "talking") {
        setState("ended", { frozenSeconds: message.talk_seconds });
        callEnded();
      } else if (call.state === "ringing") setState("ring_stopped");
      break;
    default:
      break;
  }
}

// ---- card area: one match, none, several ----------------------------------------------

function setTarget(client) {
  call.clientId = client ? client.id : null;
  view.target.textContent = client ? client.name : t("note.no_client");
  view.target.classList.toggle("muted", !client);
}

function chooseClient(client, fromChooser) {
  setTarget(client);
  const change = fromChooser
    ? el("button", { type: "button", class: "link-button", id: "change-client",
      onclick: () => showChooser(call.card.matches) }, t("multi.change"))
    : null;
  const debtId = call.campaign ? call.campaign.debt_id : null;
  view.card.replaceChildren(...[change, renderCard(client, { debtId })].filter(Boolean));
  addPlayButtons(view.card);
}

function showChooser(matches) {
  setTarget(null);
  const options = matches.map((client, index) => el("li", { class: "match" },
    el("div", { class: "match-main" },
      el("span", { class: "match-name" }, client.name), " ", segmentBadge(client.segment),
      el("div", { class: "muted" }, [
        label("kind", client.kind), client.contact ? client.contact.name : "", client.city,
      ].filter(Boolean).join(" · "))),
    el("button", { type: "button", class: "choose", "data-client-id": client.id,
      onclick: () => chooseClient(client, true) },
    el("kbd", {}, String(index + 1)), " ", t("multi.choose"))));
  view.card.replaceChildren(el("section", { class: "chooser", id: "chooser" },
    el("h2", {}, t("multi.title")), el("p", { class: "muted" }, t("multi.hint")),
    el("ol", { class: "matches" }, options)));
}

function showNewCaller(caller) {
  setTarget(null);
  const hint = caller.valid ? t("unknown.hint") : t("unknown.invalid");
  const name = el("input", { id: "new-name", name: "name", required: true, autocomplete: "off", maxlength: 256 });
  name.value = call.callerName || ""; // nothing typed twice: the caller ID's name, when it is one
  const kindSelect = el("select", { id: "new-kind", name: "kind" },
    el("option", { value: "person" }, t("kind.person")),
    el("option", { value: "company" }, t("kind.company")));
  const phone = el("input", { id: "new-phone", name: "phone", required: true, maxlength: 64 });
  phone.value = caller.e164 || caller.display;
  const form = el("form", { class: "new-caller-form", id: "new-caller-form" },
    el("label", {}, t("unknown.name"), name),
    el("label", {}, t("unknown.kind"), kindSelect),
    el("label", {}, t("unknown.phone"), phone),
    el("button", { type: "submit", class: "primary" }, el("kbd", {}, "n"), " ", t("unknown.create")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const created = await api("/api/clients", { method: "POST", body: {
        name: name.value, kind: kindSelect.value, phones: [phone.value],
      } });
      call.card = { ...call.card, matches: [created] };
      chooseClient(created, false);
      toast(t("unknown.created"), "ok");
    } catch (error) {
      toast(t("error.generic", { error: error.message }), "error");
    }
  });
  // Not every caller becomes a client: a request can carry just their number (none when withheld).
  const request = caller.e164
    ? el("section", { class: "card-section" }, el("h3", {}, t("unknown.request")), newRequest({ contact: caller.e164 }))
    : null;
  view.card.replaceChildren(el("section", { class: "new-caller", id: "new-caller" },
    el("h2", {}, t("unknown.title")),
    el("p", { class: "big-number", id: "new-caller-number" }, caller.display || t("unknown.hidden")),
    el("p", { class: "muted" }, hint),
    form, request));
}

// ---- after-call note --------------------------------------------------------------------

async function saveNote() {
  if (!call || view.save.disabled) return;
  view.save.disabled = true;
  try {
    await api(`/api/calls/${encodeURIComponent(call.linkedid)}/note`, { method: "POST", body: {
      note: view.note.value, disposition: view.disposition.value, client_id: call.clientId,
    } });
    toast(t("note.saved"), "ok");
    view.form.dataset.saved = call.linkedid;
  } catch (error) {
    toast(t("error.generic", { error: error.message }), "error");
  } finally {
    view.save.disabled = false;
  }
}

view.form.addEventListener("submit", (event) => {
  event.preventDefault();
  saveNote();
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
    event.preventDefault();
    if (dispositionOpen()) saveDisposition();
    else saveNote();
    return;
  }
  if (typing(event) || event.ctrlKey || event.metaKey || event.altKey || !call) return;
  if (event.key === "t" && !view.transfer.hidden) {
    event.preventDefault();
    view.transferTo.focus();
  } else if (event.key === "n" && $("new-name")) {
    event.preventDefault();
    $("new-name").focus();
    $("new-name").select(); // typing replaces a name the caller ID brought
  } else if (/^[1-9]$/.test(event.key) && $("chooser")) {
    const match = call.card.matches[Number(event.key) - 1];
    if (match) chooseClient(match, true);
  } else if (/^[1-9]$/.test(event.key) && dispositionOpen() && pickDisposition(event.key)) {
    event.preventDefault();
  }
});

// ---- transfer to another department ------------------------------------------------------

function showTransfer(visible) {
  view.transfer.hidden = !visible;
  if (!visible) return;
  const other = [...view.transferTo.options].find((option) => option.dataset.queue
    && option.dataset.queue !== call.queue);
  if (other) view.transferTo.value = other.value;
  syncConsult();
}

// "Consult first" is for a colleague in person: a department's queue has nobody to consult.
function syncConsult() {
  const colleague = Boolean(view.transferTo.selectedOptions[0]?.dataset.operator);
  view.consultLabel.hidden = !colleague;
  if (!colleague) view.consult.checked = false;
}

async function transfer() {
  if (!call || view.transfer.hidden) return;
  const chosen = view.transferTo.selectedOptions[0];
  const attended = Boolean(chosen.dataset.operator) && view.consult.checked;
  const body = chosen.dataset.operator
    ? { operator_id: Number(chosen.dataset.operator), attended } : { department: chosen.value };
  try {
    const done = await api(`/api/calls/${encodeURIComponent(call.linkedid)}/transfer`, {
      method: "POST", body });
    toast(t(attended ? "transfer.consulting" : "transfer.done", { department: done.department }), "ok");
  } catch (error) {
    toast(t("transfer.failed", { error: error.message }), "error");
  }
}

view.transfer.addEventListener("submit", (event) => {
  event.preventDefault();
  transfer();
});
view.transferTo.addEventListener("change", syncConsult);
view.transferTo.addEventListener("keydown", (event) => {
  if (event.key === "Enter") {
    event.preventDefault();
    transfer();
  }
});

// A department's overdue requests now (the escalator found more, or one was closed): the line under
// the status says how many, leads to that department's requests, and goes when none are left.
function showOverdue({ department_code: code, department: name, count }) {
  const list = document.getElementById("overdue-requests");
  let item = [...list.children].find((li) => li.dataset.department === code);
  if (!count) {
    item?.remove();
  } else {
    if (!item) {
      item = el("li", { dataset: { department: code } },
        el("a", { href: `/requests?department=${encodeURIComponent(code)}&view=overdue` }));
      list.append(item);
    }
    item.dataset.count = count;
    item.firstElementChild.textContent = t("desk.overdue", { department: name, count });
  }
  list.hidden = list.children.length === 0;
}

// ---- the socket, reconnecting with backoff ----------------------------------------------

let backoff = 500;

function connect() {
  const scheme = window.location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${window.location.host}/ws/desk`);
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "hello") {
      backoff = 500;
      view.banner.hidden = true;
      document.body.dataset.socket = "ready";
      setServerClock(message.now);
      loadCampaigns(); // a closed desk took us off every campaign: show the flags as they are now
    } else if (message.type === "pop") {
      onPop(message);
    } else if (message.type === "call_state") {
      onCallState(message);
    } else if (message.type === "status") {
      showStatus(message);
    } else if (message.type === "board") {
      showBoard(message);
    } else if (message.type === "pause_reasons") {
      showReasons(message.reasons);
    } else if (message.type === "escalation") {
      toast(t("escalation.notice", { id: message.request_id, subject: message.subject }), "warn");
    } else if (message.type === "overdue") {
      showOverdue(message);
    }
  });
  socket.addEventListener("close", (event) => {
    document.body.dataset.socket = "closed";
    if (event.code === 4401) {
      window.location.assign("/login");
      return;
    }
    view.banner.hidden = false;
    const delay = backoff + Math.random() * 250;
    backoff = Math.min(backoff * 2, 15000);
    setTimeout(connect, delay);
  });
}

// ---- preview campaigns: the debtor's card before the call ----------------------------------

wirePanel({
  preview: async (found) => {
    if (call && ["ringing", "talking"].includes(call.state)) return; // never hide a live caller's card
    try {
      const client = await api(`/api/clients/${found.client_id}`);
      view.card.replaceChildren(renderCard(client.card, { debtId: found.debt_id, playable: new Set(client.recorded) }));
    } catch (error) {
      toast(t("error.generic", { error: error.message }), "error");
    }
  },
});

if (!page.operator.interface) toast(t("desk.no_interface"), "warn");
wireStatus();
connect();
