// The search results page: its phone buttons are rendered by the server; wire them to dial.

import { dial } from "./common.js";

for (const button of document.querySelectorAll("button.phone-call[data-e164]")) {
  button.addEventListener("click", () => dial(button.dataset.e164, button.textContent.trim()));
}
