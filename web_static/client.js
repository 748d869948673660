// The client page: the same card the desk pops, plus the full timeline.

import { page, t } from "./common.js";
import { interactionList, renderCard } from "./card.js";

document.getElementById("client-card").replaceChildren(renderCard(page.card, { link: false }));
document.getElementById("timeline").replaceChildren(interactionList(page.timeline, "card.no_interactions"));
document.title = `${page.card.name} — ${t("app.title")}`;
