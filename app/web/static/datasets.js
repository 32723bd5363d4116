// Datasets: upload by drag and drop (the API's refusal shown as it words it), list, delete.
import { $, api, dropZone, formatBytes, formatTime, h, hideError, newestLoad, Pager, showError } from "./app.js";

const pager = new Pager($("#datasets-more"), 100, () => loadDatasets());
const beginLoad = newestLoad();

const status = $("#upload-status");
const uploadError = $("#upload-error");

async function upload(file) {
  hideError(uploadError);
  const form = new FormData();
  form.append("file", file, file.name);
  const name = $("#upload-name").value.trim();
  if (name) form.append("name", name);
  const labels = $("#upload-labels").files[0];
  if (labels) form.append("labels", labels, labels.name);
  for (const [id, field] of [["#upload-label-column", "label_column"], ["#upload-image-size", "image_size"],
                             ["#upload-color", "color"]]) {
    const value = $(id).value.trim();
    if (value) form.append(field, value);
  }
  status.textContent = `Uploading ${file.name} (${formatBytes(file.size)})…`;
  try {
    const dataset = await api("/v1/datasets", { method: "POST", form });
    status.textContent = `Stored “${dataset.name}”: ${dataset.n_samples} samples of shape [${dataset.sample_shape}]`
      + (dataset.has_labels ? `, ${dataset.n_classes} classes.` : ".");
    status.append(" ", h("a", { href: `/jobs/new?dataset_id=${dataset.id}` }, "Cluster it →"));
    $("#upload-name").value = "";
    await loadDatasets();
  } catch (error) {
    status.textContent = "";
    showError(uploadError, error);
  }
}

async function remove(dataset, button) {
  if (!confirm(`Delete dataset “${dataset.name}”? Its finished jobs and models go with it.`)) return;
  button.disabled = true;
  try {
    await api(`/v1/datasets/${dataset.id}`, { method: "DELETE" });
    await loadDatasets();
  } catch (error) {
    button.disabled = false;
    showError($("#datasets-error"), error);
  }
}

function row(dataset) {
  const remover = h("button", { type: "button", className: "danger small" }, "Delete");
  remover.addEventListener("click", () => remove(dataset, remover));
  return h("tr", { "data-id": dataset.id },
    h("td", {}, h("a", { href: `/datasets/${dataset.id}` }, h("strong", {}, dataset.name)), h("br"),
      h("code", { className: "muted" }, dataset.id)),
    h("td", {}, dataset.n_samples),
    h("td", {}, `[${dataset.sample_shape.join(", ")}]`),
    h("td", {}, dataset.has_labels ? `${dataset.n_classes} classes` : "–"),
    h("td", {}, dataset.format),
    h("td", {}, formatBytes(dataset.size_bytes)),
    h("td", {}, formatTime(dataset.created_at)),
    h("td", { className: "actions" },
      h("a", { className: "button small primary", href: `/jobs/new?dataset_id=${dataset.id}` }, "Cluster…"), " ", remover));
}

async function loadDatasets() {
  const current = beginLoad();
  const errorBox = $("#datasets-error");
  hideError(errorBox);
  try {
    const page = await pager.fetch("/v1/datasets");
    if (!current()) return;  // e.g. "Show more" answered after a delete: it still lists the deleted one
    $("#datasets-table tbody").replaceChildren(...page.items.map(row));
    $("#datasets-total").textContent = `${page.total} in all`;
    pager.show(page.items.length, page.total);
    $("#datasets-empty").hidden = page.total > 0;
  } catch (error) {
    if (current()) showError(errorBox, error);
  }
}

dropZone($("#dropzone"), $("#upload-file"), upload);
loadDatasets();
