// The call log: a supervising role reviews a call under its player (a score from 1 to 5 and a
// comment), and the ★ beside the call's play button shows the score at once. Text is only set
// with textContent.

import { api, el, page, t, toast } from "./common.js";

function reviewForm(row) {
  const score = el("select", { name: "score", "aria-label": t("review.score") },
    el("option", { value: "" }, `${t("review.score")}…`),
    [5, 4, 3, 2, 1].map((n) => el("option", { value: n, selected: String(n) === row.dataset.reviewScore }, `★ ${n}`)));
  const comment = el("input", {
    name: "comment", maxlength: 2000, placeholder: t("review.comment"), "aria-label": t("review.comment"),
  });
  comment.value = row.dataset.reviewComment ?? "";
  const form = el("form", { class: "review-form" }, score, comment, el("button", { type: "submit" }, t("review.save")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!score.value) return score.focus();
    try {
      const saved = await api(`/api/calls/${encodeURIComponent(row.dataset.linkedid)}/review`, {
        method: "PUT", body: { score: Number(score.value), comment: comment.value },
      });
      row.dataset.reviewScore = saved.score;
      row.dataset.reviewComment = saved.comment;
      const cell = row.querySelector("td.recording");
      cell.querySelector(".score")?.remove();
      cell.append(el("span", { class: "score", title: `${t("calls.quality")}: ${saved.comment} — ${saved.reviewer}` },
        `★ ${saved.score}`));
      toast(t("review.saved"), "ok");
    } catch (error) {
      toast(t("review.failed", { error: error.message }), "error");
    }
  });
  return form;
}

if (page.may_review) {
  document.addEventListener("player-opened", (event) => {
    const row = event.target;
    if (row.matches("tr[data-linkedid]")) event.detail.holder.append(reviewForm(row));
  });
}
