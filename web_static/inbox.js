// The department inbox: open a request, change its status, assign it (to me or a colleague of
// the department), comment; the history shows every step. The server checks who may do what.

import { api, el, formatTime, label, page, t, toast } from "./common.js";

const $ = (id) => document.getElementById(id);
let current = null;

function historyLine(event) {
  const when = formatTime(event.at);
  const what = {
    created: () => t("requests.event.created"),
    status: () => `${t("requests.event.status")}: ${label("requests.status", event.value)}`,
    assigned: () => `${t("requests.event.assigned")}: ${event.assignee}`,
    comment: () => `${t("requests.event.comment")}: ${event.text}`,
    escalated: () => t("requests.event.escalated"),
    again: () => `${t("requests.event.again")}: ${event.text}`,
  }[event.kind];
  return el("li", { dataset: { kind: event.kind } }, `${when} · ${event.author || "—"} · `,
    what ? what() : event.kind);
}

function show(request) {
  current = request;
  $("request-detail").hidden = false;
  $("request-title").textContent = `#${request.id} ${request.subject}`;
  $("request-client").replaceChildren(request.client_id
    ? el("a", { href: `/clients/${request.client_id}` }, request.client) : request.contact || "");
  $("request-body").textContent = request.body || "";
  $("request-assignee").textContent = request.assignee || "—";
  showStatuses(request);
  $("assign-to").replaceChildren(...request.colleagues.map((person) =>
    el("option", { value: person.id, selected: person.id === request.assignee_id }, person.name)));
  $("request-history").replaceChildren(...request.history.map(historyLine));
  const row = document.querySelector(`tr[data-request-id="${request.id}"]`);
  if (row) {
    row.querySelector(".request-status").textContent = label("requests.status", request.status);
    row.querySelector(".request-assignee").textContent = request.assignee || "—";
  }
}

// Only the moves the request can take: a closed request offers none, so its control is disabled.
function showStatuses(request) {
  const codes = [request.status, ...request.next_statuses];
  $("request-status").replaceChildren(...codes.map((code) =>
    el("option", { value: code, selected: code === request.status }, label("requests.status", code))));
  const final = request.next_statuses.length === 0;
  $("request-status").disabled = final;
  $("status-go").disabled = final;
}

async function open(id) {
  try {
    show(await api(`/api/requests/${id}`));
    $("request-detail").scrollIntoView({ block: "nearest", behavior: "smooth" });  // below a long list
  } catch (error) {
    toast(error.message, "error");
  }
}

async function act(path, body, done) {
  if (!current) return;
  try {
    await api(`/api/requests/${current.id}/${path}`, { method: "POST", body });
    toast(done, "ok");
    await open(current.id);
  } catch (error) {
    toast(t("requests.failed", { error: error.message }), "error");
  }
}

for (const button of document.querySelectorAll("button.request-open")) {
  button.addEventListener("click", () => open(button.dataset.requestId));
}
$("status-form")?.addEventListener("submit", (event) => {
  event.preventDefault();
  act("status", { status: $("request-status").value }, t("requests.saved"));
});
$("assign-me")?.addEventListener("click", () => {
  act("assign", { operator_id: page.operator.id }, t("requests.saved"));
});
$("assign-form")?.addEventListener("submit", (event) => {
  event.preventDefault();
  act("assign", { operator_id: Number($("assign-to").value) }, t("requests.saved"));
});
$("comment-form")?.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("request-comment").value.trim();
  if (!text) return;
  act("comment", { text }, t("requests.saved")).then(() => { $("request-comment").value = ""; });
});
if (page.open_request) open(page.open_request); // a card's link to one of its requests
