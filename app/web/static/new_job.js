// The job form: one field per param of the chosen method, built from GET /v1/methods' JSON schema,
// with the paper's defaults filled in and the schema's ranges enforced before anything is sent.
import { $, api, h, hideError, showError } from "./app.js";

const form = $("#job-form");
const errorBox = $("#job-error");
let methods = [];
let datasets = [];
let encoders = [];  // the tenant's pretrained image encoders, offered for an image dataset
const fields = new Map();  // "params.NAME" | "pretrain.NAME" (as the API names them in errors) -> field

/** The schema of a value, and whether null is allowed (pydantic writes Optional as anyOf [.., null]). */
function unwrap(schema) {
  if (!schema.anyOf) return { spec: schema, nullable: false };
  const spec = schema.anyOf.find((s) => s.type !== "null") || {};
  return { spec: { ...spec, title: schema.title, description: schema.description }, nullable: schema.anyOf.some((s) => s.type === "null") };
}

function inputFor(name, id, schema, value) {
  const { spec, nullable } = unwrap(schema);
  let input;
  if (spec.enum) {
    input = h("select", {}, spec.enum.map((v) => h("option", { value: v }, v)));
    input.value = value;
  } else if (spec.type === "boolean") {
    input = h("input", { type: "checkbox" });
    input.checked = Boolean(value);
  } else if (spec.type === "integer" || spec.type === "number") {
    input = h("input", {
      type: "number", step: spec.type === "integer" ? "1" : "any",
      min: spec.minimum ?? spec.exclusiveMinimum, max: spec.maximum ?? spec.exclusiveMaximum,
      placeholder: nullable ? "none" : null, required: !nullable,
    });
    input.value = value ?? "";
  } else if (spec.type === "array") {
    input = h("input", { placeholder: "e.g. 500, 500, 2000", pattern: "\\s*\\d+(\\s*,\\s*\\d+)*\\s*", required: !nullable });
    input.value = (value || []).join(", ");
  } else {
    input = h("input", { placeholder: nullable ? "none" : null, required: !nullable });
    input.value = value ?? "";
  }
  input.name = name;
  input.id = id;
  input.addEventListener("input", () => check(name));
  input.addEventListener("change", () => check(name));
  return input;
}

/** The value a field holds, as the API wants it (undefined when it does not parse). */
function valueOf(name) {
  const { input, schema } = fields.get(name);
  const { spec, nullable } = unwrap(schema);
  if (spec.type === "boolean") return input.checked;
  if (spec.enum) return input.value;
  const text = input.value.trim();
  if (text === "") return nullable ? null : undefined;
  if (spec.type === "integer" || spec.type === "number") return input.valueAsNumber;
  if (spec.type === "array") return text.split(",").map((v) => Number.parseInt(v, 10));
  return text;
}

/** The schema's ranges (inclusive and exclusive), checked as the user types; "" when fine. */
function problem(name) {
  const { input, schema } = fields.get(name);
  const { spec, nullable } = unwrap(schema);
  const value = valueOf(name);
  if (value === null && nullable) return "";
  if (value === undefined || (typeof value === "number" && Number.isNaN(value))) {
    return input.value.trim() === "" ? "A value is needed." : "Not a valid value.";
  }
  if (spec.type === "integer" && !Number.isInteger(value)) return "Must be a whole number.";
  if (spec.type === "array" && (!/^\s*\d+(\s*,\s*\d+)*\s*$/.test(input.value) || value.some((v) => v < 1))) {
    return "A comma-separated list of positive whole numbers.";
  }
  if (typeof value === "number") {
    if (spec.minimum !== undefined && value < spec.minimum) return `Must be at least ${spec.minimum}.`;
    if (spec.exclusiveMinimum !== undefined && value <= spec.exclusiveMinimum) return `Must be more than ${spec.exclusiveMinimum}.`;
    if (spec.maximum !== undefined && value > spec.maximum) return `Must be at most ${spec.maximum}.`;
    if (spec.exclusiveMaximum !== undefined && value >= spec.exclusiveMaximum) return `Must be less than ${spec.exclusiveMaximum}.`;
  }
  return "";
}

function check(name) {
  const { input, note } = fields.get(name);
  const message = problem(name);
  input.setCustomValidity(message);
  note.textContent = message;
  return !message;
}

function selectedMethod() {
  return methods.find((m) => m.name === $("#job-method").value);
}

function selectedDataset() {
  return datasets.find((d) => d.id === $("#job-dataset").value);
}

function addFields(container, group, schema, defaults) {
  for (const [key, spec] of Object.entries(schema?.properties || {})) {
    const name = `${group}.${key}`;
    const fallback = key in (defaults || {}) ? defaults[key] : spec.default;
    const input = inputFor(name, `${group === "params" ? "param" : "pretrain"}-${key}`, spec, fallback);
    const note = h("small", { className: "field-error", "aria-live": "polite" });
    const wrapper = h("label", { title: spec.description || "" }, key.replaceAll("_", " "), input, note);
    if (spec.description) wrapper.append(h("small", { className: "muted" }, spec.description));
    fields.set(name, { input, schema: spec, note, default: fallback, group, key });
    container.append(wrapper);
  }
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
  addFields(pretrain, "pretrain", method.pretrain_schema, method.pretrain_defaults);
  addFields(own, "params", method.params_schema, method.defaults);
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

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function submit(event) {
  event.preventDefault();
  hideError(errorBox);
  const names = [...fields.keys()];
  const allGood = names.map(check).every(Boolean);
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
  const blocks = { params: {}, pretrain: {} };
  for (const [name, field] of fields) {
    const value = valueOf(name);
    if (!same(value, field.default)) blocks[field.group][field.key] = value;
  }
  const params = blocks.params;
  const pretrain = blocks.pretrain;
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
    for (const item of error.details.errors || []) {
      const field = fields.get(item.param) || fields.get(`params.${item.param}`);
      if (field) { field.note.textContent = item.message; field.input.setCustomValidity(item.message); }
    }
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
