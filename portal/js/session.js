// The API client: the bearer (an API key, or the token POST /v1/sessions gives for user,
// password and TOTP) lives in this tab's sessionStorage only, never in localStorage or a cookie.

const API = "/v1"; // the same origin: CloudFront (and `tollgate local up`) put the API at /v1/
const KEY = "tollgate.bearer";

export class ApiError extends Error {
  constructor(status, body) {
    // Only the API's own errors ({code, message}) are shown as they are: another answer (a
    // gateway's "no such route" echoes the Authorization header) is never put on the page.
    const ours = Boolean(body && typeof body.code === "string");
    super(ours ? String(body.message) : `the service answered HTTP ${status}`);
    this.status = status;
    this.code = ours ? body.code : null;
    this.field = ours ? body.field : undefined;
  }
}

export const session = {
  get bearer() {
    return sessionStorage.getItem(KEY);
  },
  set bearer(value) {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  },
};

let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

function url(path, query) {
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query || {})) {
    if (value !== null && value !== undefined && value !== "") params.set(name, value);
  }
  const search = params.toString();
  return `${API}${path}${search ? `?${search}` : ""}`;
}

async function send(path, { method = "GET", query, body, bearer = session.bearer } = {}) {
  const headers = { Accept: "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url(path, query), {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  if (response.status === 401 && bearer && bearer === session.bearer) onUnauthorized();
  return response;
}

async function failure(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  return new ApiError(response.status, body);
}

export async function api(path, options = {}) {
  const response = await send(path, options);
  if (!response.ok) throw await failure(response);
  return response.json();
}

// Every page of a listing ({items, next_cursor}), up to `most` items.
export async function all(path, query = {}, most = 2000) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path, { query: { ...query, cursor } });
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && items.length < most);
  return items;
}

// A file the API hands over (a CSV, a PDF): the body itself, or a 303 to a pre-signed link,
// which the browser follows (the link carries its own signature; the key is never sent on).
export async function download(path, query, fallbackName) {
  const response = await send(path, { query });
  if (!response.ok) throw await failure(response);
  const type = response.headers.get("Content-Type") || "";
  let blob;
  if (type.startsWith("application/json")) {
    const answer = await response.json(); // a 303's body, if it was not followed
    if (!answer.url) throw new ApiError(response.status, { message: "no file in the answer" });
    const linked = await fetch(answer.url, { credentials: "omit" });
    if (!linked.ok) throw new ApiError(linked.status, { message: "the download link failed" });
    blob = await linked.blob();
  } else {
    blob = await response.blob();
  }
  const name = filename(response.headers.get("Content-Disposition")) || fallbackName;
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  return name;
}

function filename(disposition) {
  const found = /filename="?([^";]+)"?/.exec(disposition || "");
  return found ? found[1].replace(/[\\/]/g, "_") : null;
}

// Sign-in with an API key: the key is checked by GET /v1/me before it is kept.
export async function signInWithKey(key) {
  const me = await api("/me", { bearer: key });
  session.bearer = key;
  return me;
}

// Sign-in with user, password and TOTP: POST /v1/sessions answers {"token"}, the bearer from
// then on. (Served by the sessions routes; a deployment without them answers 404.)
export async function signInWithPassword(user, password, totp) {
  const answer = await api("/sessions", { method: "POST", body: { user, password, totp }, bearer: null });
  if (!answer.token) throw new ApiError(500, { message: "no token in the answer" });
  return signInWithKey(answer.token);
}

export function signOut() {
  session.bearer = null;
}
