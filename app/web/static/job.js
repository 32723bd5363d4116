// One job: its settings, live progress, ETA, loss and log while it runs, then metrics, plots, the
// model's downloads and predict.
import {
  $, ACTIVE, api, download, dropZone, formatNumber, formatTime, h, hideError, loadImage, newestLoad, progressText,
  saveBlob, showError, statusBadge, watchJob,
} from "./app.js";

const jobId = $("#job").dataset.jobId;
const PREDICT_ROWS_SHOWN = 20;
const LOG_LINES = 200;       // the log's tail shown
const LOG_POLL_MS = 2000;    // its refresh while the job runs
// The ETA as the CLI's bar computes it (Rich's TimeRemainingColumn): the speed of the job's overall
// fraction over the last 30 seconds of updates, and what is left at that speed.
const SPEED_WINDOW_MS = 30_000;
const samples = [];  // {t, fraction} of the updates seen while running
let predictions = null;  // the last predict answer, for its CSV
const BATCH_POLL_MS = 2000;
let batchTimer = null;
const beginBatchLoad = newestLoad();  // a poll's answer may arrive after the one a new batch asked for
let datasetNames = new Map();
const errorBox = $("#job-error");
const history = new Map();  // "phase/epoch" -> row: a resumed attempt re-sends the rows it kept
let job = null;
let dataset = null;
let resultsShown = false;

// -- header and progress ----------------------------------------------------------------------------

function render(next) {
  job = next;
  statusBadge($("#job-status"), job.status);
  $("#job-title").replaceChildren(job.name ? `${job.name} ` : "Job ", h("code", {}, job.id));
  const k = job.k_range && !job.k_selection ? `K estimated in ${job.k_range[0]}..${job.k_range[1]}`
    : `K = ${job.n_clusters}${job.k_selection ? ` (estimated by ${job.k_selection.criterion})` : ""}`;
  const meta = [`${job.method}, ${k}, seed ${job.seed}`,
    h("a", { href: `/datasets/${job.dataset_id}`, id: "job-dataset-link" }, dataset ? dataset.name : job.dataset_id),
    `created ${formatTime(job.created_at)}`];
  if (job.sweep_id) meta.splice(2, 0, h("a", { href: `/sweeps/${job.sweep_id}`, id: "job-sweep-link" }, "its sweep"));
  if (job.finished_at) meta.push(`finished ${formatTime(job.finished_at)}`);
  $("#job-meta").replaceChildren(...meta.flatMap((part, i) => (i ? [" · ", part] : [part])));
  const fraction = job.progress?.fraction || 0;
  $("#job-progress-bar").style.width = `${Math.round(100 * fraction)}%`;
  const eta = job.status === "running" ? estimate(fraction) : null;
  $("#job-progress-text").textContent = ACTIVE.has(job.status)
    ? `${Math.round(100 * fraction)}% · ${progressText(job)}${eta === null ? "" : ` · ETA ${formatDuration(eta)}`}`
    : job.status === "failed" ? "" : progressText(job);
  $("#job-cancel").hidden = !ACTIVE.has(job.status);
  $("#job-delete").hidden = ACTIVE.has(job.status);
  if (job.error) showError(errorBox, `${job.error.code}: ${job.error.message}`);
  renderWarnings();
  renderSettings();
}

/** Seconds left at the speed of the last 30 s of updates; null until that speed is known. */
function estimate(fraction) {
  const now = performance.now();
  samples.push({ t: now, fraction });
  while (samples.length > 2 && now - samples[0].t > SPEED_WINDOW_MS) samples.shift();
  const first = samples[0];
  const elapsed = (now - first.t) / 1000;
  const speed = elapsed > 0 ? (fraction - first.fraction) / elapsed : 0;
  return speed > 0 ? Math.max(0, (1 - fraction) / speed) : null;
}

/** 0:01:05, as the CLI's bar writes a time. */
function formatDuration(seconds) {
  const s = Math.round(seconds);
  return `${Math.floor(s / 3600)}:${String(Math.floor(s / 60) % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
}

function valueText(value) {
  if (value === null || value === undefined) return "none";
  if (typeof value === "number") return formatNumber(value);
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function fill(table, rows) {
  $("tbody", table).replaceChildren(...rows.map(([k, v]) => h("tr", { "data-key": k }, h("th", {}, k), h("td", {}, v))));
}

/** What the job was asked to do: method, K, seed, device, guard, its params and pretraining settings. */
function renderSettings() {
  const link = (href, text) => h("a", { href }, text);
  const rows = [["method", job.method],
    ["K", job.k_range ? `auto in ${job.k_range[0]}..${job.k_range[1]}${job.n_clusters ? ` → ${job.n_clusters}` : ""}` : job.n_clusters],
    ["seed", job.seed], ["device", job.device], ["guard", job.guard || "–"],
    ["dataset", link(`/datasets/${job.dataset_id}`, dataset ? dataset.name : job.dataset_id)]];
  if (job.sweep_id) rows.push(["sweep", link(`/sweeps/${job.sweep_id}`, job.sweep_id)]);
  if (job.encoder) rows.push(["encoder", h("code", {}, job.encoder)]);
  if (job.pretrained_from) rows.push(["pretrained from", link(`/jobs/${job.pretrained_from}`, job.pretrained_from)]);
  if (job.max_runtime_s) rows.push(["runtime limit", `${job.max_runtime_s} s`]);
  rows.push(["attempts", job.attempts]);
  if (job.started_at) rows.push(["started", formatTime(job.started_at)]);
  fill($("#settings-table"), rows);
  fill($("#params-table"), Object.entries(job.params || {}).map(([k, v]) => [k, valueText(v)]));
  $("#pretrain-table").hidden = !job.pretrain;
  fill($("#pretrain-table"), Object.entries(job.pretrain || {}).map(([k, v]) => [k, valueText(v)]));
}

/** The tail of the worker's log for this job; refreshed while it runs, once more at its end. */
async function loadLogs() {
  try {
    const text = await api(`/v1/jobs/${jobId}/logs`, { as: "text" });
    const lines = text.split("\n");
    if (lines[lines.length - 1] === "") lines.pop();
    const box = $("#job-logs");
    const atBottom = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
    box.textContent = lines.slice(-LOG_LINES).join("\n") || (job.status === "queued" ? "Nothing yet: the job waits for a worker." : "Empty.");
    $("#logs-note").textContent = lines.length > LOG_LINES ? `the last ${LOG_LINES} of ${lines.length} lines` : "";
    if (atBottom) box.scrollTop = box.scrollHeight;
  } catch (error) {
    $("#job-logs").textContent = error.message;
  }
}

async function followLogs() {
  while (job && ACTIVE.has(job.status)) {
    await loadLogs();
    await new Promise((resolve) => setTimeout(resolve, LOG_POLL_MS));
  }
  await loadLogs();
}

/** The job's warnings (API 1.2): a result with them is never shown as a plain success. */
function renderWarnings() {
  const box = $("#job-warnings");
  const warnings = job.warnings || [];
  box.hidden = !warnings.length;
  box.replaceChildren(...warnings.map((w) => h("p", {}, h("strong", {}, w.code.replaceAll("_", " ")), ": ", w.message)));
}

function addEpoch(row) {
  history.set(`${row.phase}/${row.epoch}`, row);
  drawLoss();
}

/** The loss of every epoch, phase after phase, on a log axis when it spans orders of magnitude. */
function drawLoss() {
  const canvas = $("#live-loss");
  const ctx = canvas.getContext("2d");
  const width = canvas.width;
  const height = canvas.height;
  ctx.clearRect(0, 0, width, height);
  const rows = [...history.values()].filter((r) => typeof r.loss === "number" && Number.isFinite(r.loss));
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#667";
  if (!rows.length) {
    ctx.fillText(job && ACTIVE.has(job.status) ? "Waiting for the first epoch…" : "No losses recorded.", 60, height / 2);
    return;
  }
  const pad = { left: 64, right: 16, top: 16, bottom: 28 };
  const values = rows.map((r) => r.loss);
  const positive = values.every((v) => v > 0);
  const log = positive && Math.max(...values) / Math.min(...values) > 50;
  const f = log ? Math.log10 : (v) => v;
  let lo = Math.min(...values.map(f));
  let hi = Math.max(...values.map(f));
  if (hi === lo) { hi += 1; lo -= log ? 1 : Math.abs(lo) * 0.1 || 1; }
  // Each phase gets an equal share of the width: a short pretraining stays readable beside a long fine-tuning.
  const phases = [...new Set(rows.map((r) => r.phase))];
  const span = (width - pad.left - pad.right) / phases.length;
  const gap = phases.length > 1 ? 12 : 0;
  const y = (v) => pad.top + (1 - (f(v) - lo) / (hi - lo)) * (height - pad.top - pad.bottom);
  ctx.strokeStyle = "#dde";
  ctx.beginPath();
  for (let t = 0; t <= 4; t += 1) {
    const yy = pad.top + t / 4 * (height - pad.top - pad.bottom);
    ctx.moveTo(pad.left, yy);
    ctx.lineTo(width - pad.right, yy);
    const v = hi - t / 4 * (hi - lo);
    ctx.fillText(formatNumber(log ? 10 ** v : v, 3), 4, yy + 4);
  }
  ctx.stroke();
  const colors = { pretrain: "#1f77b4", init: "#7f7f7f", finetune: "#d62728" };
  phases.forEach((phase, p) => {
    const mine = rows.filter((r) => r.phase === phase);
    const left = pad.left + p * span;
    const x = (i) => left + (mine.length === 1 ? 0.5 : i / (mine.length - 1)) * (span - gap);
    ctx.strokeStyle = colors[phase] || "#2ca02c";
    ctx.fillStyle = ctx.strokeStyle;
    ctx.lineWidth = 2;
    ctx.beginPath();
    mine.forEach((r, i) => (i ? ctx.lineTo(x(i), y(r.loss)) : ctx.moveTo(x(i), y(r.loss))));
    ctx.stroke();
    if (mine.length === 1) ctx.fillRect(x(0) - 2, y(mine[0].loss) - 2, 4, 4);
    ctx.fillText(`${phase} (${mine.length} epoch${mine.length === 1 ? "" : "s"})`, left + 4, height - 8);
  });
  ctx.lineWidth = 1;
}

// -- results ------------------------------------------------------------------------------------------

async function showResults() {
  if (resultsShown || job.status !== "succeeded") return;
  resultsShown = true;
  $("#results").hidden = false;
  $("#predict").hidden = false;
  showModel();  // with the results, before anything is awaited
  if (job.model_id) showBatch();
  try {
    const metrics = await api(`/v1/jobs/${jobId}/metrics`);
    const rows = [["clusters (sizes)", metrics.cluster_sizes.join(", ")]];
    for (const [name, value] of Object.entries(metrics.internal)) rows.push([name.replaceAll("_", " "), formatNumber(value)]);
    for (const [name, value] of Object.entries(metrics.external || {})) rows.push([name.toUpperCase(), formatNumber(value)]);
    $("#metrics-table tbody").replaceChildren(...rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))));
  } catch (error) {
    showError(errorBox, error);
  }
  const health = job.health || {};
  const guard = { restored: `restored the state after epoch ${health.restored_epoch} (the phase degenerated)`,
    warned: "saw a degenerate state (warn only)", off: "off" }[health.guard] || "nothing to do";
  const healthRows = job.health ? [["non-empty clusters", `${health.nonempty_clusters} of ${job.n_clusters}`],
    ["largest cluster", `${formatNumber(100 * health.largest_cluster_fraction, 3)} % of the samples`],
    ["size entropy", formatNumber(health.size_entropy)], ["guard", guard]] : [];
  $("#health-table tbody").replaceChildren(...healthRows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))));
  $("#results figure[data-plot=k_selection]").hidden = !job.k_selection;
  const images = dataset && dataset.sample_shape.length === 3;
  for (const figure of document.querySelectorAll("#results figure[data-plot]")) {
    const name = figure.dataset.plot;
    if (figure.hidden) continue;
    if ((name === "examples" && dataset && !images) || (name === "confusion" && dataset && !dataset.has_labels)) {
      figure.hidden = true;
      continue;
    }
    if (name === "embedding") {
      loadEmbedding();
      continue;
    }
    figure.classList.add("loading");
    loadImage($("img", figure), `/v1/jobs/${jobId}/plots/${name}.png`)
      .catch((error) => {
        // 409: this plot does not apply (no labels, not images); the API says why.
        if (error.status === 409 && !dataset) figure.hidden = true;
        else figure.append(h("p", { className: "banner error" }, error.message));
      })
      .finally(() => figure.classList.remove("loading"));
  }
}

/** The model's id and its two downloads (the API answers need the key: fetched, then saved). */
function showModel() {
  $("#model-line").hidden = !job.model_id;
  $("#results .downloads").querySelectorAll("a[data-download]").forEach((a) => { a.hidden = !job.model_id; });
  if (!job.model_id) return;
  $("#model-id").textContent = job.model_id;
  $("#download-zip").href = `/v1/models/${job.model_id}/download`;
  $("#download-onnx").href = `/v1/models/${job.model_id}/download?format=onnx`;
}

function saveDownload(event) {
  event.preventDefault();
  const link = event.currentTarget;
  const name = link.id === "download-onnx" ? `${job.model_id}.onnx` : `${job.model_id}.zip`;
  download(link.getAttribute("href"), name).catch((error) => showError(errorBox, error));
}

/** The embedding map by PCA or, toggled, t-SNE (slower: drawn on the server the first time). */
function loadEmbedding() {
  const figure = $("#results figure[data-plot=embedding]");
  const tsne = $("#embedding-tsne").checked;
  const img = $("img", figure);
  img.dataset.projection = tsne ? "tsne" : "pca";
  figure.classList.add("loading");
  $("#embedding-tsne").disabled = true;
  $(".banner", figure)?.remove();
  return loadImage(img, `/v1/jobs/${jobId}/plots/embedding.png${tsne ? "?projection=tsne" : ""}`)
    .catch((error) => figure.append(h("p", { className: "banner error" }, error.message)))
    .finally(() => { figure.classList.remove("loading"); $("#embedding-tsne").disabled = false; });
}

// -- batch predictions of stored datasets -------------------------------------------------------------

function batchRow(prediction) {
  const badge = h("span");
  statusBadge(badge, prediction.status);
  const p = prediction.progress;
  const bar = h("div", { className: "bar" });
  bar.style.width = `${Math.round(100 * (prediction.status === "succeeded" ? 1 : p?.fraction || 0))}%`;
  const labels = h("a", { className: "button small", "data-download": "", href: `/v1/predictions/${prediction.id}/labels?format=csv` },
    "Labels (CSV)");
  labels.addEventListener("click", (event) => {
    event.preventDefault();
    download(labels.getAttribute("href"), `${prediction.id}-labels.csv`).catch((error) => showError($("#batch-error"), error));
  });
  return h("tr", { "data-id": prediction.id, "data-status": prediction.status },
    h("td", {}, h("code", {}, prediction.id)),
    h("td", {}, h("a", { href: `/datasets/${prediction.dataset_id}` }, datasetNames.get(prediction.dataset_id) || prediction.dataset_id)),
    h("td", {}, badge, prediction.error ? h("small", { className: "muted" }, ` ${prediction.error.code}: ${prediction.error.message}`) : null),
    h("td", { className: "progress-cell" }, h("div", { className: "progress" }, bar),
      h("small", { className: "muted" }, p ? `${p.done} of ${p.total} samples` : `${prediction.n_samples} samples`)),
    h("td", {}, formatTime(prediction.created_at)),
    h("td", { className: "actions" }, prediction.status === "succeeded" ? labels : null));
}

/** This model's batch predictions, polled while one is queued or running. */
async function loadBatches() {
  const current = beginBatchLoad();
  clearTimeout(batchTimer);
  try {
    const page = await api(`/v1/predictions?model_id=${job.model_id}&limit=50`);
    if (!current()) return;
    $("#batch-table").hidden = !page.items.length;
    $("#batch-table tbody").replaceChildren(...page.items.map(batchRow));
    if (page.items.some((p) => ACTIVE.has(p.status))) batchTimer = setTimeout(loadBatches, BATCH_POLL_MS);
  } catch (error) {
    if (current()) showError($("#batch-error"), error);
  }
}

async function showBatch() {
  $("#batch").hidden = false;
  try {
    const page = await api("/v1/datasets?limit=1000");
    datasetNames = new Map(page.items.map((d) => [d.id, d.name]));
    // The datasets shaped like the training data first; the API says why another does not fit.
    const fits = (d) => dataset && JSON.stringify(d.sample_shape) === JSON.stringify(dataset.sample_shape);
    const ordered = [...page.items.filter(fits), ...page.items.filter((d) => !fits(d))];
    $("#batch-dataset").replaceChildren(...ordered.map((d) => h("option", { value: d.id },
      `${d.name} (${d.n_samples} × [${d.sample_shape}])`)));
    if (page.items.some((d) => d.id === job.dataset_id)) $("#batch-dataset").value = job.dataset_id;
  } catch (error) {
    showError($("#batch-error"), error);
  }
  await loadBatches();
}

async function startBatch() {
  const button = $("#batch-start");
  hideError($("#batch-error"));
  button.disabled = true;
  try {
    await api("/v1/predictions", { method: "POST", json: { model_id: job.model_id, dataset_id: $("#batch-dataset").value } });
    await loadBatches();
  } catch (error) {
    showError($("#batch-error"), error);
  } finally {
    button.disabled = false;
  }
}

function predictionsCsv() {
  const lines = ["row,label,probability"];
  predictions.labels.forEach((label, i) => lines.push(`${i},${label},${predictions.probabilities[i][label]}`));
  return new Blob([`${lines.join("\n")}\n`], { type: "text/csv" });
}

async function predict(file) {
  const errorEl = $("#predict-error");
  hideError(errorEl);
  $("#predict-result").hidden = true;
  $("#predict-status").textContent = `Predicting ${file.name}…`;
  const form = new FormData();
  form.append("file", file, file.name);
  const labelColumn = $("#predict-label-column").value.trim();
  if (labelColumn) form.append("label_column", labelColumn);
  try {
    const answer = await api(`/v1/models/${job.model_id}/predict`, { method: "POST", form });
    predictions = { ...answer, file: file.name };
    const counts = new Map();
    answer.labels.forEach((label) => counts.set(label, (counts.get(label) || 0) + 1));
    const summary = [...counts.entries()].sort((a, b) => a[0] - b[0]).map(([k, n]) => `cluster ${k}: ${n}`).join(", ");
    $("#predict-status").textContent = "";
    const more = answer.labels.length > PREDICT_ROWS_SHOWN ? ` The first ${PREDICT_ROWS_SHOWN} rows:` : "";
    $("#predict-summary").textContent = `${answer.labels.length} rows of ${file.name} — ${summary}.${more}`;
    $("#predict-table tbody").replaceChildren(...answer.labels.slice(0, PREDICT_ROWS_SHOWN).map((label, i) =>
      h("tr", {}, h("td", {}, i), h("td", {}, label), h("td", {}, formatNumber(answer.probabilities[i][label], 3)))));
    $("#predict-result").hidden = false;
  } catch (error) {
    $("#predict-status").textContent = "";
    showError(errorEl, error);
  }
}

// -- actions ------------------------------------------------------------------------------------------

async function cancel() {
  $("#job-cancel").disabled = true;
  try {
    render(await api(`/v1/jobs/${jobId}/cancel`, { method: "POST" }));
  } catch (error) {
    showError(errorBox, error);
  } finally {
    $("#job-cancel").disabled = false;
  }
}

async function remove() {
  if (!confirm(`Delete this job, its labels and its model?`)) return;
  try {
    await api(`/v1/jobs/${jobId}`, { method: "DELETE" });
    location.assign("/jobs");
  } catch (error) {
    showError(errorBox, error);
  }
}

async function init() {
  try {
    render(await api(`/v1/jobs/${jobId}`));
  } catch (error) {
    showError(errorBox, error);
    return;
  }
  try {
    dataset = await api(`/v1/datasets/${job.dataset_id}`);
    render(job);
  } catch { /* the dataset may have been deleted since; the job outlives it */ }
  try {
    for (const row of await api(`/v1/jobs/${jobId}/history`)) history.set(`${row.phase}/${row.epoch}`, row);
  } catch (error) {
    showError(errorBox, error);
  }
  drawLoss();
  $("#job-cancel").addEventListener("click", cancel);
  $("#job-delete").addEventListener("click", remove);
  $("#download-zip").addEventListener("click", saveDownload);
  $("#download-onnx").addEventListener("click", saveDownload);
  $("#embedding-tsne").addEventListener("change", loadEmbedding);
  $("#batch-start").addEventListener("click", startBatch);
  $("#predict-download").addEventListener("click", () => {
    if (predictions) saveBlob(predictionsCsv(), `${predictions.file.replace(/\.[^.]*$/, "")}-predictions.csv`);
  });
  followLogs();
  $("#download-labels").addEventListener("click", () =>
    download(`/v1/jobs/${jobId}/labels?format=csv`, `${jobId}-labels.csv`).catch((error) => showError(errorBox, error)));
  dropZone($("#predict-dropzone"), $("#predict-file"), predict);
  if (ACTIVE.has(job.status)) {
    try {
      await watchJob(jobId, { onStatus: render, onEpoch: addEpoch, onEnd: render });
    } catch (error) {
      showError(errorBox, error);
    }
    drawLoss();
  }
  showResults();
}

init();
