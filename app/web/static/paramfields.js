// A method's params and pretraining settings as form fields, built from GET /v1/methods' JSON
// schemas (the paper's defaults filled in, the schema's ranges checked as the user types): the
// job form and the sweep form both use them, so both take and check params alike.
import { h } from "./app.js";

/** The schema of a value, and whether null is allowed (pydantic writes Optional as anyOf [.., null]). */
function unwrap(schema) {
  if (!schema.anyOf) return { spec: schema, nullable: false };
  const spec = schema.anyOf.find((s) => s.type !== "null") || {};
  return { spec: { ...spec, title: schema.title, description: schema.description }, nullable: schema.anyOf.some((s) => s.type === "null") };
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

export class ParamFields {
  /** ``ids``: the id prefix of each group's inputs, e.g. {params: "param", pretrain: "pretrain"}. */
  constructor(ids) {
    this.ids = ids;
    this.fields = new Map();  // "params.NAME" | "pretrain.NAME" (as the API names them in errors) -> field
  }

  clear() {
    this.fields.clear();
  }

  /** One labelled field per property of ``schema`` into ``container``, valued ``defaults``. */
  add(container, group, schema, defaults) {
    for (const [key, spec] of Object.entries(schema?.properties || {})) {
      const name = `${group}.${key}`;
      const fallback = key in (defaults || {}) ? defaults[key] : spec.default;
      const input = this.inputFor(name, `${this.ids[group]}-${key}`, spec, fallback);
      const note = h("small", { className: "field-error", "aria-live": "polite" });
      const wrapper = h("label", { title: spec.description || "" }, key.replaceAll("_", " "), input, note);
      if (spec.description) wrapper.append(h("small", { className: "muted" }, spec.description));
      this.fields.set(name, { input, schema: spec, note, default: fallback, group, key });
      container.append(wrapper);
    }
  }

  inputFor(name, id, schema, value) {
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
    input.addEventListener("input", () => this.check(name));
    input.addEventListener("change", () => this.check(name));
    return input;
  }

  /** The value a field holds, as the API wants it (undefined when it does not parse). */
  valueOf(name) {
    const { input, schema } = this.fields.get(name);
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
  problem(name) {
    const { input, schema } = this.fields.get(name);
    const { spec, nullable } = unwrap(schema);
    const value = this.valueOf(name);
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

  check(name) {
    const { input, note } = this.fields.get(name);
    const message = this.problem(name);
    input.setCustomValidity(message);
    note.textContent = message;
    return !message;
  }

  /** Every field checked (each shows its own problem); true when all are fine. */
  checkAll() {
    return [...this.fields.keys()].map((name) => this.check(name)).every(Boolean);
  }

  /** ``{params, pretrain}``: only what differs from the defaults, so a run records the method's own. */
  changed() {
    const blocks = { params: {}, pretrain: {} };
    for (const [name, field] of this.fields) {
      const value = this.valueOf(name);
      if (!same(value, field.default)) blocks[field.group][field.key] = value;
    }
    return blocks;
  }

  /** The API's per-param refusals (``details.errors``) shown under their fields. */
  showErrors(items) {
    for (const item of items || []) {
      const field = this.fields.get(item.param) || this.fields.get(`params.${item.param}`);
      if (field) { field.note.textContent = item.message; field.input.setCustomValidity(item.message); }
    }
  }
}
