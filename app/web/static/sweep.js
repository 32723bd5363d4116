// One sweep: progress of its jobs while they run (polled: a sweep has no event stream), then the
// recommended run, the criteria plot and the table of every run.
import { $, ACTIVE, api, formatNumber, formatTime, h, hideError, loadImage, showError, statusBadge } from "./app.js";

const sweepId = $("#sweep").dataset.sweepId;
const errorBox = $("#sweep-error");
const POLL_MS = 2000;
// The table's columns in this order when present; any other numeric column follows.
const COLUMNS = ["n_clusters", "seed", "job_id", "stadion", "silhouette", "calinski_harabasz", "davies_bouldin",
  "stability", "input_silhouette", "input_calinski_harabasz", "input_davies_bouldin", "acc", "nmi", "ari", "selected"];
const HEADINGS = { n_clusters: "K", job_id: "Job", acc: "ACC", nmi: "NMI", ari: "ARI",
  stability: "stability (reproducibility)" };
let sweep = null;
let dataset = null;
let resultShown = false;

function render(next) {
  sweep = next;
  statusBadge($("#sweep-status"), sweep.status);
  $("#sweep-title").replaceChildren(sweep.name ? `${sweep.name} ` : "Sweep ", h("code", {}, sweep.id));
  const ks = sweep.n_clusters;
  const meta = [`${sweep.method}, K ${ks.length > 1 ? `${ks[0]}..${ks[ks.length - 1]}` : ks[0]}, seeds ${sweep.seeds.join(", ")}, `
    + `selected by ${sweep.selection}`,
  h("a", { href: `/datasets/${sweep.dataset_id}` }, dataset ? dataset.name : sweep.dataset_id),
  `created ${formatTime(sweep.created_at)}`];
  if (sweep.finished_at) meta.push(`finished ${formatTime(sweep.finished_at)}`);
  $("#sweep-meta").replaceChildren(...meta.flatMap((part, i) => (i ? [" · ", part] : [part])));
  const p = sweep.progress;
  $("#sweep-progress-bar").style.width = `${Math.round(100 * p.fraction)}%`;
  $("#sweep-progress-text").textContent = `${p.succeeded} of ${p.total} jobs succeeded`
    + [["running", p.running], ["queued", p.queued], ["failed", p.failed], ["cancelled", p.cancelled]]
      .filter(([, n]) => n).map(([what, n]) => `, ${n} ${what}`).join("");
  $("#sweep-cancel").hidden = !ACTIVE.has(sweep.status);
  if (sweep.error) showError(errorBox, `${sweep.error.code}: ${sweep.error.message}`);
}

function cell(name, value) {
  if (name === "job_id") return h("td", {}, h("a", { href: `/jobs/${value}` }, value));
  if (name === "selected") return h("td", {}, value ? "✓" : "");
  return h("td", { className: "number" }, typeof value === "number" ? formatNumber(value) : value ?? "–");
}

function showResult() {
  if (resultShown || sweep.status !== "succeeded" || !sweep.result) return;
  resultShown = true;
  $("#sweep-result").hidden = false;
  const { recommended, table } = sweep.result;
  $("#sweep-recommended").replaceChildren(`K = ${recommended.n_clusters} by ${sweep.selection}; its most typical run `,
    `(seed ${recommended.seed}): `, h("a", { id: "sweep-recommended-job", href: `/jobs/${recommended.job_id}` }, recommended.job_id),
    ...(recommended.model_id ? [", model ", h("code", {}, recommended.model_id)] : []));
  // A criterion without a value for any run (stadion of a method without an embedding) is left out.
  const present = new Set(table.flatMap((r) => Object.keys(r).filter((k) => r[k] !== null && r[k] !== undefined)));
  const columns = [...COLUMNS.filter((c) => present.has(c)), ...[...present].filter((c) => !COLUMNS.includes(c))];
  $("#sweep-table thead tr").replaceChildren(...columns.map((c) => h("th", { "data-column": c },
    HEADINGS[c] || c.replaceAll("_", " "))));
  $("#sweep-table tbody").replaceChildren(...table.map((r) => h("tr", {
    "data-job-id": r.job_id, className: r.job_id === recommended.job_id ? "recommended" : null,
  }, columns.map((c) => cell(c, r[c])))));
  const figure = $("#sweep-result figure");
  figure.classList.add("loading");
  loadImage($("#sweep-plot"), `/v1/sweeps/${sweepId}/plot.png`)
    .catch((error) => figure.append(h("p", { className: "banner error" }, error.message)))
    .finally(() => figure.classList.remove("loading"));
}

async function poll() {
  try {
    render(await api(`/v1/sweeps/${sweepId}`));
  } catch (error) {
    showError(errorBox, error);
    return;
  }
  if (ACTIVE.has(sweep.status)) setTimeout(poll, POLL_MS);
  else showResult();
}

async function cancel() {
  $("#sweep-cancel").disabled = true;
  hideError(errorBox);
  try {
    render(await api(`/v1/sweeps/${sweepId}/cancel`, { method: "POST" }));
  } catch (error) {
    showError(errorBox, error);
  } finally {
    $("#sweep-cancel").disabled = false;
  }
}

async function init() {
  try {
    render(await api(`/v1/sweeps/${sweepId}`));
  } catch (error) {
    showError(errorBox, error);
    return;
  }
  try {
    dataset = await api(`/v1/datasets/${sweep.dataset_id}`);
    render(sweep);
  } catch { /* deleted since: the sweep's jobs outlive it */ }
  $("#sweep-cancel").addEventListener("click", cancel);
  if (ACTIVE.has(sweep.status)) setTimeout(poll, POLL_MS);
  else showResult();
}

init();
