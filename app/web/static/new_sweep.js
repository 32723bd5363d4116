// The sweep form: dataset, method, the K range and seeds of the grid, the criterion that picks K,
// pretraining and the method's params (fields from the method's schema, as the job form has them:
// the same for every job of the grid).
import { $, api, h, hideError, showError } from "./app.js";
import { ParamFields } from "./paramfields.js";

const form = $("#sweep-form");
const errorBox = $("#sweep-error");
let methods = [];
let datasets = [];
const fields = new ParamFields({ params: "sweep-param", pretrain: "sweep-pretrain" });

function selectedDataset() {
  return datasets.find((d) => d.id === $("#sweep-dataset").value);
}

function fillMethods() {
  const dataset = selectedDataset();
  const kind = dataset && dataset.sample_shape.length === 3 ? "images" : "features";
  const select = $("#sweep-method");
  const previous = select.value || "kmeans";
  select.replaceChildren(...methods.filter((m) => m.input_kinds.includes(kind)).map((m) => h("option", { value: m.name }, m.name)));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  buildParams();
  if (dataset) {
    for (const id of ["#sweep-k-min", "#sweep-k-max"]) $(id).max = dataset.n_samples - 1;
    if (dataset.n_classes && !$("#sweep-k-max").dataset.touched) {
      $("#sweep-k-min").value = Math.max(2, dataset.n_classes - 3);
      $("#sweep-k-max").value = Math.min(dataset.n_samples - 1, dataset.n_classes + 3);
    }
  }
  describe();
}

function buildParams() {
  const method = methods.find((m) => m.name === $("#sweep-method").value);
  fields.clear();
  const pretrain = $("#sweep-pretrain-fields .grid");
  const own = $("#sweep-method-fields .grid");
  pretrain.replaceChildren();
  own.replaceChildren();
  $("#sweep-method-summary").textContent = method ? method.summary : "";
  if (!method) return;
  fields.add(pretrain, "pretrain", method.pretrain_schema, method.pretrain_defaults);
  fields.add(own, "params", method.params_schema, method.defaults);
  $("#sweep-pretrain-fields").hidden = !pretrain.children.length;
}

function describe() {
  const grid = gridOf();
  $("#sweep-size").textContent = grid.ks && grid.seeds ? `${grid.ks.length * grid.seeds.length} jobs `
    + `(${grid.ks.length} K's × ${grid.seeds.length} seeds).` : "";
}

/** The K's and seeds the form describes (null where a field does not parse). */
function gridOf() {
  const lo = $("#sweep-k-min").valueAsNumber;
  const hi = $("#sweep-k-max").valueAsNumber;
  const step = $("#sweep-k-step").valueAsNumber;
  const ks = [lo, hi, step].every(Number.isInteger) && lo >= 2 && lo <= hi && step >= 1
    ? Array.from({ length: Math.floor((hi - lo) / step) + 1 }, (_, i) => lo + i * step) : null;
  const text = $("#sweep-seeds").value;
  const seeds = /^\s*\d+(\s*,\s*\d+)*\s*$/.test(text) ? text.split(",").map((s) => Number.parseInt(s, 10)) : null;
  return { lo, hi, step, ks, seeds };
}

async function submit(event) {
  event.preventDefault();
  hideError(errorBox);
  const { lo, hi, step, ks, seeds } = gridOf();
  $("#sweep-k-max").setCustomValidity(ks ? "" : "The K range is two whole numbers, 2 <= smallest <= largest.");
  $("#sweep-seeds").setCustomValidity(seeds ? "" : "Seeds are comma-separated whole numbers.");
  const allGood = fields.checkAll();
  if (!allGood || !form.reportValidity()) return;
  const { params, pretrain } = fields.changed();  // only what differs from the defaults
  const body = { dataset_id: $("#sweep-dataset").value, method: $("#sweep-method").value, params,
    n_clusters: { min: lo, max: hi, step }, seeds, selection: $("#sweep-selection").value, device: $("#sweep-device").value };
  if (Object.keys(pretrain).length) body.pretrain = pretrain;
  const name = $("#sweep-name").value.trim();
  if (name) body.name = name;
  $("#sweep-submit").disabled = true;
  try {
    const sweep = await api("/v1/sweeps", { method: "POST", json: body });
    location.assign(`/sweeps/${sweep.id}`);
  } catch (error) {
    $("#sweep-submit").disabled = false;
    showError(errorBox, error);
    fields.showErrors(error.details?.errors);
  }
}

async function init() {
  try {
    const [methodPage, datasetPage] = await Promise.all([api("/v1/methods"), api("/v1/datasets?limit=1000")]);
    methods = methodPage.items;
    datasets = datasetPage.items;
  } catch (error) {
    showError(errorBox, error);
    return;
  }
  if (!datasets.length) {
    showError(errorBox, "Upload a dataset first (Datasets page).");
    $("#sweep-submit").disabled = true;
  }
  $("#sweep-dataset").replaceChildren(...datasets.map((d) => h("option", { value: d.id },
    `${d.name} (${d.n_samples} × [${d.sample_shape}])`)));
  const wanted = new URLSearchParams(location.search).get("dataset_id");
  if (wanted && datasets.some((d) => d.id === wanted)) $("#sweep-dataset").value = wanted;
  fillMethods();
  $("#sweep-dataset").addEventListener("change", fillMethods);
  $("#sweep-method").addEventListener("change", () => { buildParams(); describe(); });
  for (const id of ["#sweep-k-min", "#sweep-k-max", "#sweep-k-step", "#sweep-seeds"]) {
    $(id).addEventListener("input", (e) => { e.target.dataset.touched = "1"; e.target.setCustomValidity(""); describe(); });
  }
  form.addEventListener("input", () => hideError(errorBox));  // a refusal is about what was sent, not what is typed now
  form.addEventListener("submit", submit);
}

init();
