// What every page shares: the API key, calls to the JSON API, plots as images, the event stream.
// The pages are plain ES modules; there is no build step.

const KEY_STORAGE = "deepclust.apiKey";

export function apiKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

function authHeaders(extra = {}) {
  const headers = new Headers(extra);
  const key = apiKey();
  if (key) headers.set("Authorization", `Bearer ${key}`);
  return headers;
}

/** A non-2xx answer of the API, carrying its error body's code and message as the API worded them. */
export class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error ? body.error : null;
    super(error ? error.message : `The server answered ${status}.`);
    this.status = status;
    this.code = error ? error.code : "http_error";
    this.details = error ? error.details || {} : {};
  }
}

async function errorOf(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: keep the status */ }
  const error = new ApiError(response.status, body);
  if (response.status === 401) showAuthProblem(error.message);
  return error;
}

/** Call the API. `json` sends a JSON body, `form` a FormData; the answer's JSON is returned. */
export async function api(path, { method = "GET", json, form, as = "json", signal } = {}) {
  const init = { method, headers: authHeaders(), signal };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers.set("Content-Type", "application/json");
  } else if (form !== undefined) {
    init.body = form;
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return null;
  if (as === "blob") return response.blob();
  if (as === "text") return response.text();
  return response.json();
}

const API_PAGE = 1000;  // the most items a list route answers at once (app/http/paging.py)

/** The newest `count` items of a list route (`{items, total}`), a page of at most 1000 at a time. */
async function newest(path, count) {
  const joiner = path.includes("?") ? "&" : "?";
  let items = [];
  let total = 0;
  for (let offset = 0; offset < count; offset += API_PAGE) {
    const page = await api(`${path}${joiner}limit=${Math.min(API_PAGE, count - offset)}&offset=${offset}`);
    items = items.concat(page.items);
    total = page.total;
    if (items.length >= total || page.items.length === 0) break;
  }
  return { items, total };
}

/**
 * Loads of one view overlap (a filter changed twice, a refresh beside a click, a delete while
 * "Show more" loads) and their answers can arrive out of order. Call the returned `begin()` as a
 * load starts; the function it gives back says whether that load is still the newest, the only
 * one whose answer may be shown.
 */
export function newestLoad() {
  let latest = 0;
  return () => {
    const mine = ++latest;
    return () => mine === latest;
  };
}

/** A long list shown a page at a time: `size` items first, `size` more on each click of `button`
 *  (which then calls `reload`), the button hidden once everything is shown. */
export class Pager {
  constructor(button, size, reload) {
    this.button = button;
    this.size = size;
    this.count = size;
    button.addEventListener("click", () => { this.count += size; reload(); });
  }

  /** The newest items of `path` that the list shows now. */
  fetch(path) {
    return newest(path, this.count);
  }

  /** Say how many are shown of how many; the button offers the next page while any are left. */
  show(shown, total) {
    const left = total - shown;
    this.button.hidden = left <= 0;
    this.button.textContent = `Show ${Math.min(this.size, left)} more (${shown} of ${total} shown)`;
  }
}

/** Load an API image (which needs the key, so no plain src=) into an <img>; resolves once decoded. */
export async function loadImage(img, path) {
  const blob = await api(path, { as: "blob" });
  if (img.dataset.objectUrl) URL.revokeObjectURL(img.dataset.objectUrl);
  const url = URL.createObjectURL(blob);
  img.dataset.objectUrl = url;
  img.src = url;
  await img.decode();
  return img;
}

/** Save what an API route answers as a file download. */
export async function download(path, filename) {
  saveBlob(await api(path, { as: "blob" }), filename);
}

/** Offer a blob (an API answer, or a file made in the page) as a file download. */
export function saveBlob(blob, filename) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

/**
 * Server-Sent Events of an API route, read with fetch (EventSource cannot send the key header).
 * Yields {event, data, id}; returns when the server closes the stream or `signal` aborts.
 */
export async function* events(path, signal, lastEventId = null) {
  const headers = authHeaders({ Accept: "text/event-stream" });
  if (lastEventId) headers.set("Last-Event-ID", lastEventId);
  const response = await fetch(path, { headers, signal });
  if (!response.ok) throw await errorOf(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const message = { event: "message", data: "", id: null };
      const data = [];
      for (const line of frame.split("\n")) {
        if (!line || line.startsWith(":")) continue;  // comments keep the connection alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "event") message.event = text;
        else if (field === "data") data.push(text);
        else if (field === "id") message.id = text;
      }
      if (!data.length) continue;
      message.data = JSON.parse(data.join("\n"));
      yield message;
    }
  }
}

// -- small helpers ------------------------------------------------------------------------------

export function $(selector, root = document) {
  return root.querySelector(selector);
}

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "className") el.className = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function showError(el, error) {
  el.textContent = error instanceof Error ? error.message : String(error);
  el.hidden = false;
}

export function hideError(el) {
  el.hidden = true;
  el.textContent = "";
}

export function formatBytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

export function formatNumber(x, digits = 4) {
  if (x === null || x === undefined) return "–";
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 1e4 || (Math.abs(x) < 1e-3 && x !== 0) ? x.toExponential(2) : x.toFixed(digits);
}

export const ACTIVE = new Set(["queued", "running"]);

export function statusBadge(el, status) {
  el.textContent = status;
  el.className = `badge ${status}`;
}

/** "pretrain · epoch 3/50 · loss 0.1234" for a job resource. */
export function progressText(job) {
  if (job.status === "queued") return "Waiting for a worker…";
  if (job.status === "failed") return job.error ? `${job.error.code}: ${job.error.message}` : "Failed.";
  if (job.status === "cancelled") return "Cancelled.";
  if (job.status === "succeeded") return `Finished ${formatTime(job.finished_at)}.`;
  const p = job.progress || {};
  const parts = [];
  if (job.phase) parts.push(job.phase);
  if (p.epochs) parts.push(`epoch ${p.epoch}/${p.epochs}`);
  if (p.loss !== null && p.loss !== undefined) parts.push(`loss ${formatNumber(p.loss)}`);
  if (p.label_change !== null && p.label_change !== undefined) parts.push(`label change ${formatNumber(p.label_change)}`);
  return parts.join(" · ");
}

/** Make a drop zone (and the file input inside it) call `onFile(file)`. */
export function dropZone(zone, input, onFile) {
  const take = (files) => { if (files && files.length) onFile(files[0]); };
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    take(e.dataTransfer.files);
  });
  zone.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); } });
  input.addEventListener("change", () => { take(input.files); input.value = ""; });
}

// -- the key box --------------------------------------------------------------------------------

function showAuthProblem(message) {
  const banner = $("#auth-banner");
  if (!banner) return;
  banner.textContent = `${message} Enter an API key above.`;
  banner.hidden = false;
  $("#api-key")?.focus();
}

function initKeyBox() {
  const form = $("#key-form");
  const input = $("#api-key");
  const state = $("#key-state");
  const refresh = () => { state.textContent = apiKey() ? "key set" : "no key"; };
  refresh();
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    sessionStorage.setItem(KEY_STORAGE, key);
    input.value = "";
    location.reload();  // every list on the page now belongs to this key's tenant
  });
  $("#forget-key").addEventListener("click", () => {
    sessionStorage.removeItem(KEY_STORAGE);
    location.reload();
  });
}

initKeyBox();

/**
 * Follow a job until it ends: `status` and `epoch` events as they come, then `end` (the final job).
 * Uses the job's event stream; reconnects after a dropped connection, resuming after the last
 * epoch seen.
 */
export async function watchJob(jobId, { onStatus = () => {}, onEpoch = () => {}, onEnd = () => {} }, signal) {
  let lastEpochId = null;
  for (let attempt = 0; !signal?.aborted; attempt += 1) {
    try {
      for await (const message of events(`/v1/jobs/${jobId}/events`, signal, lastEpochId)) {
        attempt = 0;
        if (message.event === "status") onStatus(message.data);
        else if (message.event === "epoch") { lastEpochId = message.id; onEpoch(message.data); }
        else if (message.event === "end") { onEnd(message.data); return; }
      }
    } catch (error) {
      if (signal?.aborted) return;
      if (error instanceof ApiError && error.status < 500) throw error;  // gone, or not ours
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * 2 ** attempt)));
  }
}
