// The sweeps list: each sweep's grid, status, progress and recommended K; refreshed while one runs.
import { $, ACTIVE, api, formatTime, h, hideError, newestLoad, Pager, showError, statusBadge } from "./app.js";

const errorBox = $("#sweeps-error");
const pager = new Pager($("#sweeps-more"), 100, () => loadSweeps());
const beginLoad = newestLoad();  // a refresh and a "Show more" can overlap
let refreshTimer = null;

function row(sweep, datasetNames) {
  const badge = h("span");
  statusBadge(badge, sweep.status);
  const bar = h("div", { className: "bar" });
  bar.style.width = `${Math.round(100 * (sweep.progress?.fraction || 0))}%`;
  const p = sweep.progress || {};
  const ks = sweep.n_clusters;
  const recommended = sweep.result?.recommended;
  return h("tr", { "data-id": sweep.id, "data-status": sweep.status },
    h("td", {}, h("a", { href: `/sweeps/${sweep.id}` }, sweep.name || sweep.id), sweep.name ? h("br") : null,
      sweep.name ? h("code", { className: "muted" }, sweep.id) : null),
    h("td", {}, sweep.method),
    h("td", {}, h("a", { href: `/datasets/${sweep.dataset_id}` }, datasetNames.get(sweep.dataset_id) || sweep.dataset_id)),
    h("td", {}, ks.length > 1 ? `${ks[0]}..${ks[ks.length - 1]} (${ks.length})` : ks.join(", ")),
    h("td", {}, sweep.seeds.join(", ")),
    h("td", {}, sweep.selection),
    h("td", { className: "status-cell" }, badge),
    h("td", { className: "progress-cell" }, h("div", { className: "progress" }, bar),
      h("small", { className: "muted" }, `${p.succeeded || 0} of ${p.total || 0} jobs done`
        + (p.failed ? `, ${p.failed} failed` : "") + (p.cancelled ? `, ${p.cancelled} cancelled` : ""))),
    h("td", {}, recommended ? h("a", { href: `/jobs/${recommended.job_id}` }, `K = ${recommended.n_clusters}`) : "–"),
    h("td", {}, formatTime(sweep.created_at)),
    h("td", { className: "actions" }, h("a", { className: "button small", href: `/jobs?sweep_id=${sweep.id}` }, "Jobs")));
}

async function loadSweeps() {
  const current = beginLoad();
  hideError(errorBox);
  try {
    const [page, datasets] = await Promise.all([pager.fetch("/v1/sweeps"), api("/v1/datasets?limit=1000")]);
    if (!current()) return;
    const names = new Map(datasets.items.map((d) => [d.id, d.name]));
    $("#sweeps-table tbody").replaceChildren(...page.items.map((s) => row(s, names)));
    $("#sweeps-total").textContent = `${page.total} in all`;
    pager.show(page.items.length, page.total);
    $("#sweeps-empty").hidden = page.total > 0;
    clearTimeout(refreshTimer);
    refreshTimer = setTimeout(loadSweeps, page.items.some((s) => ACTIVE.has(s.status)) ? 3000 : 15000);
  } catch (error) {
    if (current()) showError(errorBox, error);
  }
}

loadSweeps();
