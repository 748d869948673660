// The client page: the same card the desk pops, plus the full timeline, and the card's editor
// (fields, numbers; the personal manager for those who may change it: page.managers).

import { api, el, label, page, t, toast, typing } from "./common.js";
import { interactionList, renderCard } from "./card.js";

const SEGMENTS = ["standard", "vip", "key", "new"];
const box = document.getElementById("client-card");
let card = page.card;

function show(next) {
  card = next;
  box.replaceChildren(renderCard(card, { link: false }),
    el("button", { type: "button", id: "client-edit", onclick: () => edit() }, t("client.edit"), " ",
      el("kbd", {}, "e")));
  document.title = `${card.name} — ${t("app.title")}`;
}

function field(name, text, control) {
  control.name = name;
  return el("label", {}, text, control);
}

function edit() {
  const segment = el("select", {}, SEGMENTS.map((code) =>
    el("option", { value: code, selected: code === card.segment }, label("segment", code))));
  const manager = page.managers
    ? field("manager_id", t("card.manager"), el("select", {},
      el("option", { value: "" }, t("card.no_manager")),
      page.managers.map((m) => el("option", { value: m.id, selected: card.manager?.id === m.id }, m.name))))
    : null;
  const form = el("form", { class: "fields client-form", id: "client-form" },
    field("name", t("client.name"), el("input", { value: card.name, required: true, maxlength: 256 })),
    field("segment", t("client.segment"), segment),
    field("city", t("card.city"), el("input", { value: card.city, maxlength: 128 })),
    field("email", t("card.email"), el("input", { value: card.email, type: "email", maxlength: 256 })),
    manager,
    field("notes", t("card.notes"), el("textarea", { rows: 3, maxlength: 10000 }, card.notes)),
    el("button", { type: "submit", class: "primary" }, t("client.save")),
    el("button", { type: "button", onclick: () => show(card) }, t("client.cancel")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form));
    if ("manager_id" in body) body.manager_id = body.manager_id ? Number(body.manager_id) : null;
    await change(`/api/clients/${card.id}`, { method: "PATCH", body }, t("client.saved"));
  });
  box.replaceChildren(form, phonesEditor());
  form.elements.name.focus();
}

// Numbers are changed one at a time, each saved at once (a bad number is refused with the reason).
function phonesEditor() {
  const number = el("input", { name: "number", required: true, maxlength: 64, inputmode: "tel" });
  const tag = el("input", { name: "label", maxlength: 64, list: "phone-labels" });
  const add = el("form", { class: "fields", id: "phone-add" },
    el("label", {}, t("client.number"), number), el("label", {}, t("client.label"), tag),
    el("button", { type: "submit" }, t("client.add_number")));
  add.addEventListener("submit", async (event) => {
    event.preventDefault();
    await change(`/api/clients/${card.id}/phones`, { method: "POST", body: { number: number.value, label: tag.value } },
      t("client.saved"), true);
  });
  return el("section", { class: "phones-editor" }, el("h3", {}, t("card.phones")),
    el("ul", { class: "phones" }, card.phones.map((phone) => el("li", { dataset: { e164: phone.e164 } },
      phone.display, phone.label ? el("span", { class: "muted" }, ` ${phone.label}`) : null, " ",
      el("button", { type: "button", class: "link-button phone-remove",
        onclick: () => change(`/api/clients/${card.id}/phones/${encodeURIComponent(phone.e164)}`,
          { method: "DELETE" }, t("client.saved"), true) }, t("client.remove_number"))))),
    add,
    el("datalist", { id: "phone-labels" }, ["mobile", "work", "home"].map((kind) =>
      el("option", { value: t(`client.label.${kind}`) }))));
}

async function change(path, options, done, stayEditing = false) {
  try {
    const next = await api(path, options);
    toast(done, "ok");
    if (stayEditing) {
      card = next;
      box.replaceChildren(box.firstChild, phonesEditor());
    } else {
      show(next);
    }
  } catch (error) {
    toast(t("client.failed", { error: error.message }), "error");
  }
}

// Supervising roles see clients that may be this one (a shared number, the same name) and fold one
// into this card; the page then reloads with everything merged.
function showDuplicates(duplicates) {
  const panel = document.getElementById("duplicates");
  panel.hidden = !duplicates?.length;
  if (panel.hidden) return;
  panel.querySelector("ul").replaceChildren(...duplicates.map((other) => el("li", { dataset: { id: other.id } },
    el("a", { class: "client-name", href: `/clients/${other.id}` }, other.name), " ",
    el("span", { class: "muted" }, [t(`client.dup.${other.reason}`), other.city].filter(Boolean).join(" · ")), " ",
    el("span", { class: "phones" }, other.phones.map((phone) => phone.display).join(", ")), " ",
    el("button", { type: "button", class: "merge", onclick: () => merge(other) }, t("client.merge")))));
}

async function merge(other) {
  if (!window.confirm(t("client.merge_confirm", { name: other.name, into: card.name }))) return;
  try {
    await api(`/api/clients/${card.id}/merge`, { method: "POST", body: { duplicate_id: other.id } });
    window.location.reload();
  } catch (error) {
    toast(t("client.failed", { error: error.message }), "error");
  }
}

// A note outside any call (a letter, a visit): saved with its author, heads the timeline.
const noteForm = document.getElementById("note-form");
const note = document.getElementById("client-note");
async function saveNote(event) {
  event.preventDefault();
  if (!note.value.trim()) return;
  try {
    const fresh = await api(`/api/clients/${card.id}/notes`, { method: "POST", body: { note: note.value } });
    note.value = "";
    toast(t("client.saved"), "ok");
    showTimeline(fresh.timeline, fresh.recorded);
  } catch (error) {
    toast(t("client.failed", { error: error.message }), "error");
  }
}
noteForm.addEventListener("submit", saveNote);
note.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) saveNote(event);
});

function showTimeline(items, recorded) {
  document.getElementById("timeline").replaceChildren(interactionList(items, "card.no_interactions", new Set(recorded)));
}

document.addEventListener("keydown", (event) => {
  if (event.key !== "e" || typing(event) || event.ctrlKey || event.metaKey || event.altKey) return;
  if (!document.getElementById("client-edit")) return; // already editing
  event.preventDefault();
  edit();
});

show(card);
showTimeline(page.timeline, page.recorded);
showDuplicates(page.duplicates);
