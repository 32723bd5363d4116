// The jobs list: standalone jobs and sweeps side by side (a sweep's jobs grouped under it, shown when
// it is expanded), metric columns to compare runs, sorting by any column, filters by method,
// dataset, sweep and status; live status of running jobs from their event streams; cancel, delete.
import { $, ACTIVE, api, formatNumber, h, hideError, newestLoad, Pager, progressText, showError, statusBadge, watchJob } from "./app.js";

const MAX_WATCHED = 8;  // event streams open at once; further active jobs refresh with the list
const LIMIT = 1000;  // one page: an expanded sweep's jobs, the sweeps of the filter (far fewer than the list)
const errorBox = $("#jobs-error");
// The newest 100 standalone jobs and 100 sweeps first, 100 more of each per "Show more".
const pager = new Pager($("#jobs-more"), 100, () => loadJobs());
const watched = new Map();  // job id -> AbortController
const expanded = new Set();  // sweep ids whose jobs are shown
const children = new Map();  // sweep id -> its jobs, once fetched
let refreshTimer = null;
const beginLoad = newestLoad();
let datasetNames = new Map();
let entries = [];  // {kind: "job", job} | {kind: "sweep", sweep}
// Metrics sort best first on the first click (davies-bouldin is not listed); the rest A to Z.
const DESCENDING_FIRST = new Set(["acc", "nmi", "silhouette", "nonempty", "k", "created"]);
let sort = { key: "created", descending: true };

// -- sorting ------------------------------------------------------------------------------------------

function jobValue(job, key) {
  const m = job.metrics || {};
  switch (key) {
    case "name": return (job.name || job.id).toLowerCase();
    case "method": return job.method;
    case "dataset": return (datasetNames.get(job.dataset_id) || job.dataset_id).toLowerCase();
    case "k": return job.n_clusters;
    case "acc": return m.acc;
    case "nmi": return m.nmi;
    case "silhouette": return m.silhouette;
    case "nonempty": return m.nonempty_clusters;
    case "status": return job.status;
    default: return job.created_at;
  }
}

/** A sweep sorts by its recommended run's numbers (from its result table) where it has one. */
function sweepValue(sweep, key) {
  const best = (sweep.result?.table || []).find((r) => r.job_id === sweep.result?.recommended?.job_id) || {};
  switch (key) {
    case "name": return (sweep.name || sweep.id).toLowerCase();
    case "method": return sweep.method;
    case "dataset": return (datasetNames.get(sweep.dataset_id) || sweep.dataset_id).toLowerCase();
    case "k": return sweep.result?.recommended?.n_clusters;
    case "acc": return best.acc;
    case "nmi": return best.nmi;
    case "silhouette": return best.silhouette;
    case "status": return sweep.status;
    case "created": return sweep.created_at;
    default: return undefined;
  }
}

/** Rows without a value (no metrics yet, unlabelled data) go last whichever the direction. */
function compare(a, b) {
  const missing = (v) => v === null || v === undefined;
  if (missing(a) || missing(b)) return missing(a) - missing(b);
  const order = typeof a === "number" ? a - b : String(a).localeCompare(String(b));
  return sort.descending ? -order : order;
}

function sorted(list, valueOf) {
  return [...list].sort((a, b) => compare(valueOf(a, sort.key), valueOf(b, sort.key)));
}

function showSort() {
  for (const th of document.querySelectorAll("#jobs-table th[data-sort]")) {
    th.setAttribute("aria-sort", th.dataset.sort === sort.key ? (sort.descending ? "descending" : "ascending") : "none");
  }
}

// -- rows ---------------------------------------------------------------------------------------------

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
    children.clear();
    await loadJobs();
  } catch (error) {
    button.disabled = false;
    showError(errorBox, error);
  }
}

function metricCells(values) {
  return ["acc", "nmi", "silhouette", "nonempty"].map((key) => h("td", { className: `number metric-${key}` },
    values[key] === undefined || values[key] === null ? "–" : formatNumber(values[key], key === "nonempty" ? 0 : 3)));
}

/** "Dec 3, 13:09": a list's column of times stays narrow. */
function when(iso) {
  return iso ? new Date(iso).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" }) : "";
}

/** How long a finished job took, from its start to its end. */
function took(job) {
  if (!job.started_at || !job.finished_at) return "";
  const s = Math.max(0, Math.round((new Date(job.finished_at) - new Date(job.started_at)) / 1000));
  return s < 60 ? `in ${s} s` : s < 3600 ? `in ${Math.floor(s / 60)} min ${s % 60} s` : `in ${(s / 3600).toFixed(1)} h`;
}

function progressCell(job) {
  if (!ACTIVE.has(job.status)) {
    return h("td", { className: "progress-cell" }, h("small", { className: "muted progress-text" },
      job.status === "succeeded" ? took(job) : progressText(job)));
  }
  const bar = h("div", { className: "bar" });
  bar.style.width = `${Math.round(100 * (job.progress?.fraction || 0))}%`;
  return h("td", { className: "progress-cell" }, h("div", { className: "progress" }, bar),
    h("small", { className: "muted progress-text" }, progressText(job)));
}

function jobRow(job, parent = null) {
  const badge = h("span");
  statusBadge(badge, job.status);
  const m = job.metrics || {};
  return h("tr", { "data-id": job.id, "data-status": job.status, "data-sweep": parent, className: parent ? "child" : null },
    h("td", {}, h("a", { href: `/jobs/${job.id}` }, job.name || job.id), job.name ? h("br") : null,
      job.name ? h("code", { className: "muted" }, job.id) : null),
    h("td", {}, job.method),
    h("td", { className: "nowrap" }, h("a", { href: `/datasets/${job.dataset_id}` }, datasetNames.get(job.dataset_id) || job.dataset_id)),
    h("td", {}, job.n_clusters ?? "auto"),
    metricCells({ acc: m.acc, nmi: m.nmi, silhouette: m.silhouette, nonempty: m.nonempty_clusters }),
    h("td", { className: "status-cell" }, badge),
    progressCell(job),
    h("td", { className: "when" }, when(job.created_at)),
    actions(job));
}

function sweepRows(sweep) {
  const badge = h("span");
  statusBadge(badge, sweep.status);
  const bar = h("div", { className: "bar" });
  bar.style.width = `${Math.round(100 * (sweep.progress?.fraction || 0))}%`;
  const open = expanded.has(sweep.id);
  const toggle = h("button", { type: "button", className: "small quiet toggle", "aria-expanded": open ? "true" : "false",
    title: open ? "Hide its jobs" : "Show its jobs" }, `${open ? "▾" : "▸"} ${sweep.job_ids.length} jobs`);
  toggle.addEventListener("click", () => expand(sweep.id));
  const recommended = sweep.result?.recommended;
  const ks = sweep.n_clusters;
  const p = sweep.progress || {};
  const rows = [h("tr", { "data-sweep-id": sweep.id, "data-status": sweep.status, className: "sweep" },
    h("td", {}, toggle, " ", h("a", { href: `/sweeps/${sweep.id}` }, `sweep ${sweep.name || sweep.id}`)),
    h("td", {}, sweep.method),
    h("td", { className: "nowrap" }, h("a", { href: `/datasets/${sweep.dataset_id}` }, datasetNames.get(sweep.dataset_id) || sweep.dataset_id)),
    h("td", { className: "nowrap" }, recommended ? `${recommended.n_clusters} of ${ks[0]}..${ks[ks.length - 1]}` : `${ks[0]}..${ks[ks.length - 1]}`),
    metricCells({ acc: sweepValue(sweep, "acc"), nmi: sweepValue(sweep, "nmi"), silhouette: sweepValue(sweep, "silhouette") }),
    h("td", { className: "status-cell" }, badge),
    h("td", { className: "progress-cell" }, h("div", { className: "progress" }, bar),
      h("small", { className: "muted" }, `${p.succeeded || 0} of ${p.total || 0} jobs done`)),
    h("td", { className: "when" }, when(sweep.created_at)),
    h("td", { className: "actions" }, h("a", { className: "button small", href: `/sweeps/${sweep.id}` }, "Open")))];
  if (open) {
    const jobs = children.get(sweep.id);
    if (!jobs) rows.push(h("tr", { className: "child" }, h("td", { colspan: 12, className: "muted" }, "Loading its jobs…")));
    else rows.push(...sorted(jobs, jobValue).map((job) => jobRow(job, sweep.id)));
  }
  return rows;
}

function render() {
  const rows = sorted(entries, (e, key) => (e.kind === "job" ? jobValue(e.job, key) : sweepValue(e.sweep, key)))
    .flatMap((e) => (e.kind === "job" ? [jobRow(e.job)] : sweepRows(e.sweep)));
  $("#jobs-table tbody").replaceChildren(...rows);
  showSort();
}

async function expand(sweepId) {
  if (expanded.has(sweepId)) {
    expanded.delete(sweepId);
    render();
    return;
  }
  expanded.add(sweepId);
  render();
  try {
    const page = await api(`/v1/jobs?sweep_id=${sweepId}&limit=${LIMIT}`);
    children.set(sweepId, page.items);
    page.items.filter((job) => ACTIVE.has(job.status)).forEach(watch);
    render();
  } catch (error) {
    showError(errorBox, error);
  }
}

function update(job) {
  for (const list of [entries.filter((e) => e.kind === "job").map((e) => e.job), ...children.values()]) {
    const i = list.findIndex((j) => j.id === job.id);
    if (i >= 0) Object.assign(list[i], job, { metrics: list[i].metrics });
  }
  const old = document.querySelector(`#jobs-table tr[data-id="${job.id}"]`);
  if (old) old.replaceWith(jobRow(job, old.dataset.sweep || null));
}

function watch(job) {
  if (watched.has(job.id) || watched.size >= MAX_WATCHED) return;
  const controller = new AbortController();
  watched.set(job.id, controller);
  // At the end the list is fetched again: the final job's metrics summary is in the list only.
  watchJob(job.id, { onStatus: update, onEnd: (final) => { update(final); scheduleRefresh(500); } }, controller.signal)
    .catch(() => {})
    .finally(() => watched.delete(job.id));
}

function scheduleRefresh(ms) {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(loadJobs, ms);
}

// -- loading ------------------------------------------------------------------------------------------

function filters() {
  return { method: $("#jobs-method").value, dataset_id: $("#jobs-dataset").value, sweep_id: $("#jobs-sweep").value,
    status: $("#jobs-status").value };
}

/** The filters in the address, so a filtered list can be linked to (the sweep page does). */
function remember(f) {
  const query = new URLSearchParams(Object.entries(f).filter(([, v]) => v));
  history.replaceState(null, "", query.size ? `?${query}` : location.pathname);
}

async function loadJobs() {
  const current = beginLoad();
  hideError(errorBox);
  const f = filters();
  remember(f);
  const query = new URLSearchParams(Object.entries(f).filter(([, v]) => v !== ""));
  // Without a sweep chosen, only standalone jobs are listed, and each sweep as one row.
  if (!f.sweep_id) query.set("standalone", "true");
  try {
    const sweepQuery = f.dataset_id ? `?dataset_id=${f.dataset_id}` : "";
    const [page, sweeps] = await Promise.all([pager.fetch(`/v1/jobs?${query}`),
      f.sweep_id ? Promise.resolve({ items: [], total: 0 }) : pager.fetch(`/v1/sweeps${sweepQuery}`)]);
    const shownSweeps = sweeps.items.filter((s) => (!f.method || s.method === f.method) && (!f.status || s.status === f.status));
    // Expanded sweeps show their jobs as they are now.
    await Promise.all([...expanded].map(async (id) => {
      if (!shownSweeps.some((s) => s.id === id)) return;
      children.set(id, (await api(`/v1/jobs?sweep_id=${id}&limit=${LIMIT}`)).items);
    }));
    // An older filter's answer arriving last would otherwise replace the newer one's rows.
    if (!current()) return;
    entries = [...page.items.map((job) => ({ kind: "job", job })), ...shownSweeps.map((sweep) => ({ kind: "sweep", sweep }))];
    render();
    const sweepsTotal = shownSweeps.length ? ` and ${shownSweeps.length} sweep${shownSweeps.length === 1 ? "" : "s"}` : "";
    $("#jobs-total").textContent = `${page.total} job${page.total === 1 ? "" : "s"}${sweepsTotal}`;
    pager.show(page.items.length + sweeps.items.length, page.total + sweeps.total);
    $("#jobs-empty").hidden = entries.length > 0;
    const active = [...page.items, ...[...children.values()].flat()].filter((job) => ACTIVE.has(job.status));
    for (const [id, controller] of watched) {
      if (!active.some((job) => job.id === id)) controller.abort();
    }
    active.forEach(watch);
    // New jobs (from another tab or the CLI), sweeps' progress and active jobs beyond the streams
    // show on a refresh: faster while something runs.
    const busy = active.length > watched.size || shownSweeps.some((s) => ACTIVE.has(s.status));
    scheduleRefresh(busy ? 3000 : 15000);
  } catch (error) {
    if (current()) showError(errorBox, error);
  }
}

async function init() {
  const wanted = new URLSearchParams(location.search);
  try {
    const [methods, datasets, sweeps] = await Promise.all([api("/v1/methods"), api("/v1/datasets?limit=1000"),
      api(`/v1/sweeps?limit=${LIMIT}`)]);
    datasetNames = new Map(datasets.items.map((d) => [d.id, d.name]));
    $("#jobs-method").append(...methods.items.map((m) => h("option", { value: m.name }, m.name)));
    $("#jobs-dataset").append(...datasets.items.map((d) => h("option", { value: d.id }, d.name)));
    $("#jobs-sweep").append(...sweeps.items.map((s) => h("option", { value: s.id },
      `${s.name || s.id} (${s.method}, K ${s.n_clusters[0]}..${s.n_clusters[s.n_clusters.length - 1]})`)));
  } catch (error) {
    showError(errorBox, error);
    return;
  }
  for (const [field, id] of [["method", "#jobs-method"], ["dataset_id", "#jobs-dataset"], ["sweep_id", "#jobs-sweep"],
                             ["status", "#jobs-status"]]) {
    const value = wanted.get(field);
    if (value && [...$(id).options].some((o) => o.value === value)) $(id).value = value;
    $(id).addEventListener("change", loadJobs);
  }
  for (const th of document.querySelectorAll("#jobs-table th[data-sort]")) {
    th.tabIndex = 0;
    const choose = () => {
      const key = th.dataset.sort;
      sort = key === sort.key ? { key, descending: !sort.descending } : { key, descending: DESCENDING_FIRST.has(key) };
      render();
    };
    th.addEventListener("click", choose);
    th.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); choose(); } });
  }
  await loadJobs();
}

init();
