// The desk's campaign side: the campaign call's script and disposition form, and the Campaigns
// panel (Ready per campaign; for preview campaigns "Next debtor" and "Call"). desk.js owns the
// call; this module only shows what a campaign adds to it.

import { api, el, label, t, toast } from "./common.js";

const $ = (id) => document.getElementById(id);
const view = {
  call: $("campaign-call"), name: $("campaign-call-name"), script: $("campaign-script"),
  form: $("disposition-form"), codes: [...document.querySelectorAll("#disp-codes input[name=disp-code]")],
  promise: $("disp-promise"), amount: $("disp-amount"), date: $("disp-date"),
  callback: $("disp-callback"), callbackAt: $("disp-callback-at"), note: $("disp-note"),
  error: $("disp-error"), save: $("disp-save"), panel: $("campaigns-panel"), list: $("campaigns-list"),
};

// ---- the campaign call ----------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");
const localDay = (date) => `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
const localMinute = (date) => `${localDay(date)}T${pad(date.getHours())}:${pad(date.getMinutes())}`;

// Show the campaign of a pop (its name, its script as plain text with its line breaks) and the
// disposition form; a pop of the same call again (a reload) keeps what was typed. Returns whether
// this is a campaign call.
export function showCampaignCall(campaign, again) {
  view.call.hidden = !campaign;
  view.form.hidden = !campaign;
  if (!campaign) return false;
  view.name.textContent = campaign.name;
  view.script.textContent = campaign.script || "";
  view.script.hidden = !campaign.script;
  if (!again || view.form.dataset.channelId !== campaign.channel_id) {
    view.form.reset();
    view.form.dataset.channelId = campaign.channel_id;
    view.form.dataset.debtId = campaign.debt_id;
    delete view.form.dataset.saved;
    view.save.disabled = false;
    showFields();
    showError("");
  }
  const now = new Date();
  view.date.min = localDay(now);
  view.callbackAt.min = localMinute(now);
  return true;
}

export function dispositionOpen() {
  return !view.form.hidden;
}

const chosen = () => view.codes.find((input) => input.checked)?.value || "";

function showFields() {
  const code = chosen();
  view.promise.hidden = code !== "promise_to_pay";
  view.callback.hidden = code !== "callback";
  view.amount.required = view.date.required = code === "promise_to_pay";
  view.callbackAt.required = code === "callback";
}

function showError(message) {
  view.error.textContent = message;
  view.error.hidden = !message;
}

// Keys 1-9 pick the result in the order the form lists them.
export function pickDisposition(key) {
  const input = view.codes.find((option) => option.dataset.key === key);
  if (!input) return false;
  input.checked = true;
  showFields();
  const fields = { promise_to_pay: view.amount, callback: view.callbackAt };
  (fields[input.value] || view.note).focus();
  return true;
}

// The checks the server makes too, so the operator hears at once what is missing.
function problem(body) {
  if (!body.code) return t("campaign.choose");
  if (body.code === "promise_to_pay") {
    if (!body.amount) return t("disp.err.amount_required");
    if (!/^\d+([.,]\d{1,2})?$/.test(body.amount.replace(/\s/g, "")) || Number(body.amount.replace(",", ".")) <= 0) {
      return t("disp.err.bad_amount", { value: body.amount });
    }
    if (!body.promised_date) return t("disp.err.date_required");
    if (body.promised_date < localDay(new Date())) return t("disp.err.date_in_past", { date: body.promised_date });
  }
  if (body.code === "callback") {
    if (!view.callbackAt.value) return t("disp.err.callback_required");
    if (new Date(view.callbackAt.value) <= new Date()) return t("disp.err.callback_not_ahead");
  }
  return "";
}

export async function saveDisposition() {
  if (view.form.hidden || view.save.disabled) return;
  const body = { code: chosen(), note: view.note.value };
  if (body.code === "promise_to_pay") {
    body.amount = view.amount.value.trim();
    body.promised_date = view.date.value;
  } else if (body.code === "callback" && view.callbackAt.value) {
    body.callback_at = new Date(view.callbackAt.value).toISOString(); // the operator's local time, sent as UTC
  }
  const wrong = problem(body);
  showError(wrong);
  if (wrong) return;
  view.save.disabled = true;
  try {
    await api(`/api/campaign-calls/${encodeURIComponent(view.form.dataset.channelId)}/disposition`, {
      method: "POST", body });
    view.form.dataset.saved = view.form.dataset.channelId;
    toast(`${t("campaign.disposition_saved")}: ${label("cdisp", body.code)}`, "ok");
  } catch (error) {
    showError(error.message);
    view.save.disabled = false;
  }
}

for (const input of view.codes) input.addEventListener("change", showFields);
view.form.addEventListener("submit", (event) => {
  event.preventDefault();
  saveDisposition();
});

// ---- the Campaigns panel ---------------------------------------------------------------------

let onPreview = () => {};

// `preview(found, campaign)` is desk.js's: it shows the previewed debtor's card.
export function wirePanel({ preview }) {
  onPreview = preview;
}

export async function loadCampaigns() {
  let campaigns;
  try {
    campaigns = await api("/api/campaigns/mine");
  } catch (error) {
    toast(t("error.generic", { error: error.message }), "error");
    return;
  }
  view.panel.hidden = campaigns.length === 0;
  view.list.replaceChildren(...campaigns.map(campaignRow));
}

function campaignRow(campaign) {
  const ready = el("input", {
    type: "checkbox", class: "campaign-ready", id: `campaign-ready-${campaign.id}`,
    "data-campaign-id": campaign.id, checked: campaign.ready,
  });
  ready.addEventListener("change", () => setReady(campaign, ready));
  const row = el("li", { class: "campaign-row", "data-campaign-id": campaign.id, "data-mode": campaign.mode },
    el("div", { class: "campaign-row-head" },
      el("span", { class: "campaign-row-name" }, campaign.name),
      el("span", { class: `badge cstatus-${campaign.status}` }, label("cstatus", campaign.status))),
    el("label", { class: "campaign-ready-label" }, ready, " ", t("campaign.ready")));
  if (campaign.mode === "preview") row.append(previewControls(campaign));
  return row;
}

async function setReady(campaign, box) {
  try {
    await api(`/api/campaigns/${campaign.id}/ready`, { method: "POST", body: { ready: box.checked } });
    toast(t(box.checked ? "campaign.ready_on" : "campaign.ready_off", { name: campaign.name }), "ok");
  } catch (error) {
    box.checked = !box.checked;
    toast(t("error.generic", { error: error.message }), "error");
  }
}

function previewControls(campaign) {
  const info = el("p", { class: "campaign-preview muted", id: `campaign-preview-${campaign.id}` },
    t("campaign.no_preview"));
  const dial = el("button", { type: "button", class: "campaign-dial", id: `campaign-dial-${campaign.id}`,
    disabled: true }, t("campaign.preview_call"));
  const next = el("button", { type: "button", class: "campaign-next", id: `campaign-next-${campaign.id}` },
    t("campaign.preview_next"));
  let found = null;
  next.addEventListener("click", async () => {
    next.disabled = true;
    try {
      found = await api(`/api/campaigns/${campaign.id}/preview`, { method: "POST" });
      info.textContent = [found.contract, found.phone].filter(Boolean).join(" · ");
      info.classList.remove("error");
      dial.disabled = false;
      dial.dataset.debtId = found.debt_id;
      onPreview(found, campaign);
    } catch (error) {
      found = null;
      dial.disabled = true;
      info.textContent = error.message;
    } finally {
      next.disabled = false;
    }
  });
  dial.addEventListener("click", async () => {
    if (!found) return;
    dial.disabled = true;
    try {
      await api(`/api/campaigns/${campaign.id}/preview/${found.debt_id}/dial`, { method: "POST" });
      toast(t("campaign.dialling", { phone: found.phone }), "ok");
      found = null;
    } catch (error) {
      info.textContent = error.message; // the guard's reason when the law does not allow the call
      info.classList.add("error");
      toast(error.message, "error");
      dial.disabled = false;
    }
  });
  return el("div", { class: "campaign-preview-box" }, el("div", { class: "row" }, next, dial), info);
}
