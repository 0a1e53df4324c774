// The dashboard's only way to the server: the public API, as any client would call it.
// The key lives in sessionStorage (this tab, until it closes), never in a URL.

const KEY_NAME = "whetstone.apiKey";
export const BASE_MODEL_OWNER = "whetstone"; // `owned_by` of the registry's base models

export const getKey = () => sessionStorage.getItem(KEY_NAME);
export const setKey = (key) => sessionStorage.setItem(KEY_NAME, key);
export const clearKey = () => sessionStorage.removeItem(KEY_NAME);

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

function headers(extra = {}, key = getKey()) {
  return { Authorization: `Bearer ${key}`, ...extra };
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    /* not JSON: keep the status line */
  }
  const message = body?.error?.message || `${response.status} ${response.statusText}`;
  if (response.status === 401) window.dispatchEvent(new CustomEvent("whetstone:unauthorized"));
  return new ApiError(message, response.status, body);
}

/** `api("/v1/files")`, `api(path, {method: "POST", json: {...}})`; resolves to the JSON. */
export async function api(path, { method = "GET", json, form, key, signal } = {}) {
  const init = { method, headers: headers({}, key ?? getKey()), signal };
  if (json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (form !== undefined) {
    init.body = form; // multipart: the browser sets the boundary
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response.json();
}

/** Every item of a cursor-paginated list (`after` = the last id), up to `max`. */
export async function listAll(path, { limit = 100, max = 2000, signal } = {}) {
  const items = [];
  let after = null;
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api(
      `${path}${sep}limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ""}`,
      { signal },
    );
    items.push(...page.data);
    if (!page.has_more || page.data.length === 0 || items.length >= max) return items;
    after = page.data[page.data.length - 1].id;
  }
}

/** Fetch a file's content with the key and hand it to the browser as a download. */
export async function download(fileId, filename) {
  const response = await fetch(`/v1/files/${encodeURIComponent(fileId)}/content`, {
    headers: headers(),
  });
  if (!response.ok) throw await failure(response);
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename || fileId;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * `POST /v1/chat/completions` with `stream: true`, read as server-sent events through
 * fetch's ReadableStream. Calls `onDelta(text)` per content piece; resolves to the whole
 * answer and the finish reason.
 */
export async function streamChat(body, onDelta, signal) {
  const response = await fetch("/v1/chat/completions", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let text = "";
  let finish = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block
        .split(/\r?\n/)
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (!data || data === "[DONE]") continue;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(chunk.error.message || "stream error", 500, chunk);
      for (const choice of chunk.choices || []) {
        const piece = choice.delta?.content;
        if (piece) {
          text += piece;
          onDelta(piece, text);
        }
        if (choice.finish_reason) finish = choice.finish_reason;
      }
    }
  }
  return { text, finish };
}
