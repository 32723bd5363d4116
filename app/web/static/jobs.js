// The jobs list: live status of running jobs from their event streams, cancel and delete.
import { $, ACTIVE, api, formatTime, h, hideError, progressText, showError, statusBadge, watchJob } from "./app.js";

const MAX_WATCHED = 8;  // event streams open at once; further active jobs refresh with the list
const errorBox = $("#jobs-error");
const watched = new Map();  // job id -> AbortController
let refreshTimer = null;
let datasetNames = new Map();

function actions(job) {
  const cell = h("td", { className: "actions" });
  if (ACTIVE.has(job.status)) {
    const cancel = h("button", { type: "button", className: "small" }, "Cancel");
    cancel.addEventListener("click", () => act(cancel, `/v1/jobs/${job.id}/cancel`, "POST"));
    cell.append(cancel);
  } else {
    const remove = h("button", { type: "button", className: "small danger" }, "Delete");
    remove.addEventListener("click", () => {
      if (confirm(`Delete job ${job.name || job.id}, its labels and its model?`)) act(remove, `/v1/jobs/${job.id}`, "DELETE");
    });
    cell.append(remove);
  }
  return cell;
}

async function act(button, path, method) {
  button.disabled = true;
  hideError(errorBox);
  try {
    await api(path, { method });
    await loadJobs();
  } catch (error) {
    button.disabled = false;
    showError(errorBox, error);
  }
}

function row(job) {
  const badge = h("span");
  statusBadge(badge, job.status);
  const bar = h("div", { className: "bar" });
  bar.style.width = `${Math.round(100 * (job.progress?.fraction || 0))}%`;
  return h("tr", { "data-id": job.id, "data-status": job.status },
    h("td", {}, h("a", { href: `/jobs/${job.id}` }, job.name || job.id), job.name ? h("br") : null,
      job.name ? h("code", { className: "muted" }, job.id) : null),
    h("td", {}, job.method),
    h("td", {}, datasetNames.get(job.dataset_id) || h("code", { className: "muted" }, job.dataset_id)),
    h("td", {}, job.n_clusters),
    h("td", { className: "status-cell" }, badge),
    h("td", { className: "progress-cell" }, h("div", { className: "progress" }, bar),
      h("small", { className: "muted progress-text" }, progressText(job))),
    h("td", {}, formatTime(job.created_at)),
    actions(job));
}

function update(job) {
  const old = document.querySelector(`#jobs-table tr[data-id="${job.id}"]`);
  if (old) old.replaceWith(row(job));
}

function watch(job) {
  if (watched.has(job.id) || watched.size >= MAX_WATCHED) return;
  const controller = new AbortController();
  watched.set(job.id, controller);
  watchJob(job.id, { onStatus: update, onEnd: (final) => { update(final); } }, controller.signal)
    .catch(() => {})
    .finally(() => watched.delete(job.id));
}

async function loadJobs() {
  hideError(errorBox);
  const status = $("#jobs-status").value;
  try {
    const [page, datasets] = await Promise.all([api(`/v1/jobs?limit=200${status ? `&status=${status}` : ""}`),
      api("/v1/datasets?limit=1000")]);
    datasetNames = new Map(datasets.items.map((d) => [d.id, d.name]));
    $("#jobs-table tbody").replaceChildren(...page.items.map(row));
    $("#jobs-total").textContent = `${page.total} in all`;
    $("#jobs-empty").hidden = page.total > 0;
    const active = page.items.filter((job) => ACTIVE.has(job.status));
    for (const [id, controller] of watched) {
      if (!active.some((job) => job.id === id)) controller.abort();
    }
    active.forEach(watch);
    // New jobs (from another tab or the CLI) and active jobs beyond the streams show on a slow refresh.
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(loadJobs, active.length > watched.size ? 3000 : 15000);
  } catch (error) {
    showError(errorBox, error);
  }
}

$("#jobs-status").addEventListener("change", loadJobs);
loadJobs();
