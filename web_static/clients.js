// The client list's "New client": a walk-in, a letter, a call from a number the desk never saw.
// The server checks the number as the desk's new-caller form does; the new card opens at once.

import { api, t, toast } from "./common.js";

const form = document.getElementById("new-client-form");
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const fields = Object.fromEntries(new FormData(form));
  try {
    const created = await api("/api/clients", { method: "POST", body: {
      name: fields.name, kind: fields.kind, phones: [fields.phone], email: fields.email, city: fields.city,
    } });
    window.location.assign(`/clients/${created.id}`);
  } catch (error) {
    toast(t("error.generic", { error: error.message }), "error");
  }
});
