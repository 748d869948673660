// The client card, as the desk pops it and the client page shows it. One renderer for both.

import { api, el, formatSeconds, formatTime, label, page, phoneButton, t, toast, typing } from "./common.js";

export function segmentBadge(segment) {
  return el("span", { class: `badge segment segment-${segment}` }, label("segment", segment));
}

function section(title, body, extraClass = "") {
  return el("section", { class: `card-section ${extraClass}` }, el("h3", {}, title), body);
}

function phoneList(phones) {
  return el("ul", { class: "phones" }, phones.map((phone) =>
    el("li", {}, phoneButton(phone), phone.label ? el("span", { class: "muted" }, ` ${phone.label}`) : null)));
}

// `playable`: the Linkedids of calls whose recording the viewer may play (the client page's).
export function interactionItem(item, playable = new Set()) {
  const isCall = item.type === "call";
  const meta = [formatTime(item.at)];
  if (isCall) {
    meta.push(label("dir", item.direction));
    meta.push(label("outcome", item.outcome || "in_progress"));
    if (item.talk_seconds) meta.push(`${t("calls.talk")} ${formatSeconds(item.talk_seconds)}`);
    if (item.outcome === "abandoned" && item.wait_seconds !== null && item.wait_seconds !== undefined) {
      meta.push(`${t("calls.wait")} ${formatSeconds(item.wait_seconds)}`);
    }
  }
  if (item.disposition) meta.push(label("disp", item.disposition));
  if (item.operator) meta.push(item.operator);
  // A talked call carries its Linkedid, so the desk can add its ▶ later (addPlayButtons).
  const talked = isCall && item.talk_seconds ? item.linkedid : null;
  return el("li", { class: `interaction interaction-${item.type}`, "data-linkedid": talked },
    el("span", { class: "interaction-type" }, isCall ? t("timeline.call") : t("timeline.note")),
    el("span", { class: "muted" }, meta.filter(Boolean).join(" · ")),
    isCall && playable.has(item.linkedid) ? playButton(item.linkedid) : null,
    item.note ? el("p", { class: "interaction-note" }, item.note) : null);
}

function playButton(linkedid) {
  return el("button", {
    type: "button", class: "play", title: t("calls.play"), "aria-label": t("calls.play"),
    "data-play": `/api/calls/${encodeURIComponent(linkedid)}/recording`,
  }, "▶");
}

// The desk pops a card without waiting for the recordings: once it is on screen, the server says
// which of its calls the operator may play, and those get their ▶.
export async function addPlayButtons(card) {
  const entries = [...card.querySelectorAll("li.interaction-call[data-linkedid]")]
    .filter((entry) => !entry.querySelector(":scope > button[data-play]"));
  if (!entries.length) return;
  const asked = new URLSearchParams(entries.map((entry) => ["linkedid", entry.dataset.linkedid]));
  try {
    const { playable } = await api(`/api/calls/playable?${asked}`);
    for (const entry of entries) {
      if (playable.includes(entry.dataset.linkedid)) entry.children[1].after(playButton(entry.dataset.linkedid));
    }
  } catch (error) {
    console.warn("the card's recordings could not be listed", error); // the card itself is complete
  }
}

export function interactionList(items, emptyKey, playable = new Set()) {
  if (!items.length) return el("p", { class: "muted" }, t(emptyKey));
  return el("ul", { class: "interactions" }, items.map((item) => interactionItem(item, playable)));
}

// Amounts come as decimal strings; shown in the page's locale with the debt's currency.
export function money(amount, currency) {
  if (amount === null || amount === undefined) return "";
  try {
    return new Intl.NumberFormat(page.lang === "en" ? "en-GB" : "ru-RU", { style: "currency", currency })
      .format(Number(amount));
  } catch {
    return `${amount} ${currency}`; // a currency code Intl does not know
  }
}

function formatDay(iso) {
  const [year, month, day] = String(iso).split("-").map(Number);
  const date = new Date(year, month - 1, day);
  return Number.isNaN(date.getTime()) ? String(iso) : date.toLocaleDateString(page.lang === "en" ? "en-GB" : "ru-RU");
}

// Open debts, the total due first; `currentId` marks the debt this campaign call is about.
function debtList(debts, currentId) {
  return el("ul", { class: "debts", id: "card-debts" }, debts.map((debt) => {
    const current = debt.id === currentId;
    return el("li", {
      class: `debt debt-${debt.status}${current ? " debt-current" : ""}`, "data-debt-id": debt.id,
      "aria-current": current ? "true" : null,
    },
    el("div", { class: "debt-main" },
      el("span", { class: "debt-total" }, money(debt.total_due, debt.currency)), " ",
      el("span", { class: "muted" }, t("debt.total_due")),
      current ? el("span", { class: "badge debt-current-badge" }, t("debt.current")) : null,
      el("span", { class: `badge debt-status debt-status-${debt.status}` }, label("debt", debt.status))),
    el("div", { class: "muted debt-facts" }, [
      `${t("debt.contract")} ${debt.contract}`, debt.creditor,
      `${t("debt.principal")} ${money(debt.principal, debt.currency)}`,
      `${debt.days_past_due} ${t("debt.dpd")}`,
    ].join(" · ")),
    debt.promised_amount
      ? el("div", { class: "debt-promise" }, el("strong", {}, `${t("debt.promise")}: `),
        money(debt.promised_amount, debt.currency), debt.promised_date ? ` → ${formatDay(debt.promised_date)}` : "")
      : null);
  }));
}

// The types an operator files by hand (a promise to pay is the campaign form's).
const FILED_KINDS = ["question", "complaint", "order", "service", "callback"];

function requestItem(request) {
  return el("li", { dataset: { requestId: request.id } },
    el("a", { class: "request-subject", href: `/requests?request=${request.id}` }, request.subject),
    el("span", { class: "muted" }, ` · ${[request.department, label("status", request.status),
      formatTime(request.created_at)].filter(Boolean).join(" · ")}`));
}

// Open requests, and the form that files a new one for this client while they are on the line:
// the server routes it (debtor → collections, a managed client → the manager's department) and
// says where it went.
function requestsSection(client) {
  const list = el("ul", { class: "requests", id: "card-requests" }, client.open_requests.map(requestItem));
  const empty = el("p", { class: "muted", hidden: client.open_requests.length > 0 }, t("card.no_requests"));
  return section(t("card.open_requests"), [list, empty, newRequest({ client_id: client.id }, (filed) => {
    list.prepend(requestItem(filed));
    empty.hidden = true;
  })]);
}

// The "New request" button (`r`) and the form it opens, for `about`: {client_id} or, for a caller
// the CRM does not know, {contact: their number}; `filed` gets the request the server made.
export function newRequest(about, filed = () => {}) {
  const open = el("button", { type: "button", class: "link-button", id: "new-request" },
    t("card.new_request"), " ", el("kbd", {}, "r"));
  const box = el("div", {});
  open.addEventListener("click", () => {
    open.hidden = true;
    box.replaceChildren(requestForm(about, filed, () => {
      box.replaceChildren();
      open.hidden = false;
      open.focus();
    }));
    box.querySelector("input").focus();
  });
  return el("div", { class: "new-request" }, open, box);
}

function requestForm(about, filed, close) {
  const kind = el("select", { name: "kind" }, FILED_KINDS.map((code) =>
    el("option", { value: code }, label("requests.kind", code))));
  const subject = el("input", { name: "subject", required: true, maxlength: 256, autocomplete: "off" });
  const body = el("textarea", { name: "body", rows: 3, maxlength: 10000 });
  const save = el("button", { type: "submit", class: "primary" }, t("card.file_request"), " ",
    el("kbd", {}, "Ctrl+Enter"));
  const form = el("form", { class: "request-form", id: "request-form" },
    el("label", {}, t("requests.kind"), kind),
    el("label", {}, t("requests.subject"), subject),
    el("label", { class: "wide" }, t("card.request_body"), body),
    el("div", { class: "wide form-buttons" }, save,
      el("button", { type: "button", onclick: close }, t("card.request_cancel"), " ", el("kbd", {}, "Esc"))));
  form.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.stopPropagation();
      close();
    } else if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      event.stopPropagation(); // the desk's Ctrl+Enter saves the call's note: this one files the request
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (save.disabled) return;
    if (!subject.value.trim()) {
      subject.focus();
      return;
    }
    save.disabled = true;
    try {
      const request = await api("/api/requests", { method: "POST", body: {
        kind: kind.value, subject: subject.value.trim(), body: body.value, ...about,
      } });
      filed(request);
      toast(t("card.request_filed", { id: request.id, department: request.department || "—" }), "ok");
      close();
    } catch (error) {
      toast(t("requests.failed", { error: error.message }), "error");
      save.disabled = false;
    }
  });
  return form;
}

// `r` opens the card's request form, on the desk and on the client's page alike.
document.addEventListener("keydown", (event) => {
  if (event.key !== "r" || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  const button = document.getElementById("new-request");
  if (button && !button.hidden) {
    event.preventDefault();
    button.click();
  }
});

// `playable`: as for interactionItem, when the card comes with it (the client API's `recorded`).
export function renderCard(client, { link = true, debtId = null, playable = new Set() } = {}) {
  const head = el("header", { class: "card-head" },
    el("h2", { class: "client-name", id: "client-name" }, client.name),
    el("div", { class: "card-tags" },
      segmentBadge(client.segment),
      el("span", { class: "badge kind" }, label("kind", client.kind)),
      link ? el("a", { href: `/clients/${client.id}`, class: "card-link" }, t("card.open")) : null));

  const facts = el("dl", { class: "facts" },
    el("dt", {}, t("card.manager")),
    el("dd", {}, client.manager ? client.manager.name : el("span", { class: "muted" }, t("card.no_manager"))),
    client.city ? [el("dt", {}, t("card.city")), el("dd", {}, client.city)] : null,
    client.email ? [el("dt", {}, t("card.email")), el("dd", {}, client.email)] : null);

  const speaking = client.contact
    ? el("p", { class: "speaking" }, el("strong", {}, `${t("card.speaking")}: `),
      client.contact.name, client.contact.position ? ` — ${client.contact.position}` : "")
    : null;

  const contacts = client.contacts.length
    ? section(t("card.contacts"), el("ul", { class: "contacts" }, client.contacts.map((contact) =>
      el("li", {},
        el("span", { class: "contact-name" }, contact.name),
        contact.position ? el("span", { class: "muted" }, ` — ${contact.position}`) : null,
        contact.email ? el("span", { class: "muted" }, ` · ${contact.email}`) : null,
        contact.phones.length ? phoneList(contact.phones) : null))))
    : null;

  const requests = requestsSection(client);

  const debts = client.debts && client.debts.length
    ? section(t("card.debts"), debtList(client.debts, debtId), "card-debts")
    : null;

  return el("article", { class: "client-card", "data-client-id": client.id },
    head,
    speaking,
    debts,
    el("div", { class: "card-columns" },
      el("div", {},
        facts,
        section(t("card.phones"), phoneList(client.phones)),
        client.notes ? section(t("card.notes"), el("p", { class: "client-notes" }, client.notes)) : null,
        contacts),
      el("div", {},
        requests,
        section(t("card.last_interactions"),
          interactionList(client.last_interactions.slice(0, 10), "card.no_interactions", playable)))));
}
