// An import page (debts, the client base): upload the CSV, follow the server's progress, show what
// came of it. Everything from the file (contracts, names, reasons, rows) is set with textContent only.

import { api, el, page, t } from "./common.js";

const POLL_MS = 400;
const COUNTS = ["read", "created", "updated", "unchanged", "rejected", "warnings"];
// "created" is the kind's own word (new debts, new clients); the other counts are every import's.
const countLabel = (key) => t(key === "created" ? `${page.texts}.count.created` : `import.count.${key}`);

const form = document.getElementById("import-form");
const input = document.getElementById("import-file");
const button = document.getElementById("import-start");
const status = document.getElementById("import-status");
const bar = document.getElementById("import-progress");
const percent = document.getElementById("import-percent");
const message = document.getElementById("import-message");
const result = document.getElementById("import-result");

function say(text, error = false) {
  message.textContent = text;
  message.className = error ? "error" : "";
}

function setProgress(done, total) {
  const value = total > 0 ? Math.floor((100 * done) / total) : 0;
  bar.value = value;
  percent.textContent = `${value}%`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function upload(file) {
  const response = await fetch(`${page.api}?name=${encodeURIComponent(file.name)}`, {
    method: "POST", body: file, credentials: "same-origin",
    headers: { "Content-Type": "text/csv", Accept: "application/json", "X-CSRF-Token": page.csrf },
  });
  const data = response.headers.get("content-type")?.includes("json") ? await response.json() : null;
  if (!response.ok) {
    if (response.status === 401) window.location.assign("/login");
    throw new Error(typeof data?.detail === "string" ? data.detail : response.statusText);
  }
  return data.job_id;
}

async function follow(jobId, name) {
  for (;;) {
    const job = await api(`${page.api}/${encodeURIComponent(jobId)}`);
    if (job.state === "failed") {
      say(t("import.failed", { name, error: job.error }), true);
      return;
    }
    if (job.state === "done") {
      setProgress(1, 1);
      say(t("import.done", { name }));
      show(jobId, job);
      return;
    }
    setProgress(job.done, job.total);
    if (job.total) say(t("import.running", { name, done: job.done, total: job.total }));
    await sleep(POLL_MS);
  }
}

function show(jobId, job) {
  const counts = result.querySelector("#import-counts tbody");
  counts.replaceChildren(...COUNTS.map((key) =>
    el("tr", { dataset: { count: key } }, el("th", {}, countLabel(key)),
      el("td", { class: "num" }, job.counts[key]))));
  const report = document.getElementById("import-report");
  report.href = `${page.api}/${encodeURIComponent(jobId)}/rejected.csv`;
  const rejected = result.querySelector("#import-rejected tbody");
  rejected.replaceChildren(...job.rejected.map((row) =>
    el("tr", { dataset: { line: row.line } }, el("td", { class: "num" }, row.line), el("td", {}, row.key),
      el("td", {}, row.reasons.join("; ")), el("td", {}, el("code", {}, row.raw)))));
  if (!job.rejected.length) rejected.append(el("tr", {}, el("td", { colspan: 4 }, t("import.none_rejected"))));
  const more = document.getElementById("import-more");
  more.hidden = job.counts.rejected <= job.rejected.length;
  more.textContent = t("import.more", { shown: job.rejected.length, count: job.counts.rejected });
  const warnings = result.querySelector("#import-warnings tbody");
  warnings.replaceChildren(...job.warnings.map((w) =>
    el("tr", {}, el("td", { class: "num" }, w.line), el("td", {}, w.key), el("td", {}, w.text))));
  document.getElementById("import-warnings-box").hidden = !job.warnings.length;
  result.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const file = input.files[0];
  if (!file) return;
  result.hidden = true;
  status.hidden = false;
  setProgress(0, 1);
  if (file.size > page.max_upload) {
    say(t("import.too_big", { mb: Math.floor(page.max_upload / 2 ** 20) }), true);
    return;
  }
  button.disabled = true;
  say(t("import.uploading", { name: file.name }));
  try {
    await follow(await upload(file), file.name);
  } catch (error) {
    say(t("import.failed", { name: file.name, error: error.message }), true);
  } finally {
    button.disabled = false;
  }
});
