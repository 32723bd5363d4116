// The job form: one field per param of the chosen method, built from GET /v1/methods' JSON schema,
// with the paper's defaults filled in and the schema's ranges enforced before anything is sent.
import { $, api, h, hideError, showError } from "./app.js";
import { ParamFields } from "./paramfields.js";

const form = $("#job-form");
const errorBox = $("#job-error");
let methods = [];
let datasets = [];
let encoders = [];  // the tenant's pretrained image encoders, offered for an image dataset
const fields = new ParamFields({ params: "param", pretrain: "pretrain" });

function selectedMethod() {
  return methods.find((m) => m.name === $("#job-method").value);
}

function selectedDataset() {
  return datasets.find((d) => d.id === $("#job-dataset").value);
}

function buildParams() {
  const method = selectedMethod();
  fields.clear();
  const pretrain = $("#pretrain-fields .grid");
  const own = $("#method-fields .grid");
  pretrain.replaceChildren();
  own.replaceChildren();
  if (!method) return;
  $("#method-summary").textContent = method.summary;
  fields.add(pretrain, "pretrain", method.pretrain_schema, method.pretrain_defaults);
  fields.add(own, "params", method.params_schema, method.defaults);
  $("#pretrain-fields").hidden = !pretrain.children.length;
}

function fillMethods() {
  const dataset = selectedDataset();
  const images = Boolean(dataset && dataset.sample_shape.length === 3);
  $("#job-encoder-label").hidden = !(images && encoders.length);
  if (!images) $("#job-encoder").value = "";
  const encoded = images && $("#job-encoder").value !== "";
  const kind = images ? "images" : "features";
  const select = $("#job-method");
  const previous = select.value || "dec";
  // With an encoder the method clusters feature vectors: only the methods that accept one.
  select.replaceChildren(...methods.filter((m) => (encoded ? m.accepts_encoder : m.input_kinds.includes(kind)))
    .map((m) => h("option", { value: m.name }, m.name)));
  if ([...select.options].some((o) => o.value === previous)) select.value = previous;
  const k = $("#job-n-clusters");
  if (dataset) {
    k.max = dataset.n_samples;
    if (!k.dataset.touched) k.value = Math.min(dataset.n_classes || 10, dataset.n_samples);
  }
  buildParams();
}

async function submit(event) {
  event.preventDefault();
  hideError(errorBox);
  const allGood = fields.checkAll();
  const k = $("#job-n-clusters");
  const auto = $("#job-k-auto").checked;
  const kValue = auto ? "auto" : k.valueAsNumber;
  k.setCustomValidity(auto || (Number.isInteger(kValue) && kValue >= 2 && kValue <= Number(k.max || Infinity))
    ? "" : `K must be a whole number from 2 to ${k.max || "the number of samples"}.`);
  const kMin = $("#job-k-min").valueAsNumber;
  const kMax = $("#job-k-max").valueAsNumber;
  $("#job-k-max").setCustomValidity(!auto || (Number.isInteger(kMin) && Number.isInteger(kMax) && kMin >= 2 && kMin <= kMax)
    ? "" : "The K range is two whole numbers, 2 <= smallest <= largest.");
  if (!allGood || !form.reportValidity()) return;
  // Only what differs from the defaults is sent: the job then records the method's own defaults.
  const { params, pretrain } = fields.changed();
  const body = {
    dataset_id: $("#job-dataset").value, method: $("#job-method").value, n_clusters: kValue,
    seed: $("#job-seed").valueAsNumber, device: $("#job-device").value, params,
  };
  if (Object.keys(pretrain).length) body.pretrain = pretrain;
  if (auto) body.k_range = [kMin, kMax];
  body.guard = $("#job-guard").value;
  const name = $("#job-name").value.trim();
  if (name) body.name = name;
  const encoder = $("#job-encoder").value;
  if (encoder) body.encoder = encoder;
  $("#job-submit").disabled = true;
  try {
    const job = await api("/v1/jobs", { method: "POST", json: body });
    location.assign(`/jobs/${job.id}`);
  } catch (error) {
    $("#job-submit").disabled = false;
    showError(errorBox, error);
    fields.showErrors(error.details?.errors);
  }
}

function toggleAutoK() {
  const auto = $("#job-k-auto").checked;
  $("#job-n-clusters").disabled = auto;
  $("#job-n-clusters").required = !auto;
  $("#job-k-range-label").hidden = !auto;
}

async function init() {
  $("#job-k-auto").addEventListener("change", toggleAutoK);
  try {
    const [methodPage, datasetPage, encoderPage] = await Promise.all([
      api("/v1/methods"), api("/v1/datasets?limit=1000"),
      api("/v1/encoders?limit=1000").catch(() => ({ items: [] }))]);
    methods = methodPage.items;
    datasets = datasetPage.items;
    encoders = encoderPage.items;
  } catch (error) {
    showError(errorBox, error);
    return;
  }
  if (!datasets.length) {
    showError(errorBox, "Upload a dataset first (Datasets page).");
    $("#job-submit").disabled = true;
  }
  $("#job-dataset").replaceChildren(...datasets.map((d) => h("option", { value: d.id },
    `${d.name} (${d.n_samples} × [${d.sample_shape}])`)));
  const wanted = new URLSearchParams(location.search).get("dataset_id");
  if (wanted && datasets.some((d) => d.id === wanted)) $("#job-dataset").value = wanted;
  $("#job-encoder").append(...encoders.map((e) => h("option", { value: e.id },
    `${e.name} ([${e.input_shape}] → ${e.output_dim})`)));
  fillMethods();
  $("#job-dataset").addEventListener("change", fillMethods);
  $("#job-encoder").addEventListener("change", fillMethods);
  $("#job-method").addEventListener("change", buildParams);
  $("#job-n-clusters").addEventListener("input", (e) => { e.target.dataset.touched = "1"; e.target.setCustomValidity(""); });
  $("#job-reset").addEventListener("click", buildParams);
  form.addEventListener("submit", submit);
}

init();
