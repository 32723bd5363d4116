// One dataset: its facts, a glimpse of its content (sample images, or each feature's range), the
// balance of its classes when labelled, and the jobs trained on it.
import { $, api, formatBytes, formatNumber, formatTime, h, hideError, loadImage, showError, statusBadge } from "./app.js";

const datasetId = $("#dataset").dataset.datasetId;
const errorBox = $("#dataset-error");
const JOBS_SHOWN = 100;

function facts(dataset) {
  $("#dataset-title").replaceChildren(`${dataset.name} `, h("code", { className: "muted" }, dataset.id));
  const rows = [["samples", dataset.n_samples], ["sample shape", `[${dataset.sample_shape.join(", ")}]`],
    ["kind", dataset.sample_shape.length === 3 ? "images" : "feature vectors"],
    ["labels", dataset.has_labels ? `${dataset.n_classes} classes` : "none"], ["format", dataset.format],
    ["size", formatBytes(dataset.size_bytes)], ["uploaded", formatTime(dataset.created_at)],
    ["sha256", h("code", {}, dataset.sha256.slice(0, 16) + "…")]];
  $("#dataset-facts tbody").replaceChildren(...rows.map(([k, v]) => h("tr", { "data-key": k }, h("th", {}, k), h("td", {}, v))));
}

function features(summary) {
  const f = summary.features;
  $("#dataset-features").hidden = false;
  $("#features-note").textContent = f.shown < f.total ? `The first ${f.shown} of ${f.total} columns.` : `${f.total} columns.`;
  $("#features-table tbody").replaceChildren(...f.min.map((_, i) => h("tr", {}, h("td", {}, i),
    ...["min", "max", "mean", "std"].map((k) => h("td", { className: "number" }, formatNumber(f[k][i], 3))))));
}

function classes(counts) {
  $("#dataset-classes").hidden = false;
  const most = Math.max(...counts);
  const total = counts.reduce((a, b) => a + b, 0);
  $("#class-bars").replaceChildren(...counts.flatMap((n, c) => {
    const fill = h("div", { className: "fill" });
    fill.style.width = `${(100 * n) / most}%`;
    return [h("span", { className: "class-name" }, `class ${c}`), h("div", {}, fill),
      h("span", { className: "class-count muted" }, `${n} (${formatNumber((100 * n) / total, 1)} %)`)];
  }));
}

function jobRow(job) {
  const badge = h("span");
  statusBadge(badge, job.status);
  const m = job.metrics || {};
  const number = (v) => h("td", { className: "number" }, v === undefined || v === null ? "–" : formatNumber(v, 3));
  return h("tr", { "data-id": job.id },
    h("td", {}, h("a", { href: `/jobs/${job.id}` }, job.name || job.id)),
    h("td", {}, job.method), h("td", {}, job.n_clusters ?? "auto"),
    number(m.acc), number(m.nmi), number(m.silhouette),
    h("td", {}, badge), h("td", {}, formatTime(job.created_at)));
}

async function init() {
  let dataset;
  try {
    dataset = await api(`/v1/datasets/${datasetId}`);
  } catch (error) {
    showError(errorBox, error);
    return;
  }
  hideError(errorBox);
  facts(dataset);
  const images = dataset.sample_shape.length === 3;
  const [summary, jobs] = await Promise.all([
    api(`/dashboard/datasets/${datasetId}/overview`).catch((error) => { showError(errorBox, error); return null; }),
    api(`/v1/jobs?dataset_id=${datasetId}&limit=${JOBS_SHOWN}`).catch((error) => { showError(errorBox, error); return null; })]);
  if (jobs) {
    $("#dataset-jobs-table tbody").replaceChildren(...jobs.items.map(jobRow));
    $("#dataset-jobs-total").textContent = `${jobs.total} in all`;
    $("#dataset-jobs-empty").hidden = jobs.total > 0;
  }
  if (summary?.class_counts) classes(summary.class_counts);
  if (summary?.features) features(summary);
  if (images) {
    $("#dataset-samples").hidden = false;
    $("#samples-note").textContent = dataset.has_labels ? "The first images of each class, a row per class." : "The first images.";
    await loadImage($("#samples-image"), `/dashboard/datasets/${datasetId}/samples.png`)
      .catch((error) => showError(errorBox, error));
  }
}

init();
