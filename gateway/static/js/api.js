// Calls to the REST gateway. Every answer is the gateway's envelope
// ({success, message, data, error}); network failures become one too, so
// screens handle a single shape. A 401 on a signed-in call ends the session
// with a message, which sends the app back to sign-in.
import { endSession, saveLogin, session, setRefresher } from "./session.js";

const UNREACHABLE = { success: false, message: "The gateway cannot be reached", data: { errors: [] } };

export function query(params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// A background tab's timers are throttled, so the scheduled refresh may come
// late: a call made with a token about to expire refreshes first. One refresh
// at a time: calls made meanwhile wait for the same one.
const STALE_MS = 5_000;
let refreshing = null;
async function freshToken() {
  if (session.refresh && session.expiresAt - Date.now() <= STALE_MS) await refreshOnce();
}

function refreshOnce() {
  refreshing = refreshing || refreshTokens().finally(() => { refreshing = null; });
  return refreshing;
}

export async function request(method, path, body, { auth = true } = {}) {
  if (auth) await freshToken();
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth && session.access) headers.Authorization = `Bearer ${session.access}`;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    return UNREACHABLE;
  }
  let envelope;
  try {
    envelope = await response.json();
  } catch {
    envelope = { success: false, message: `Unexpected answer (HTTP ${response.status})`, data: { errors: [] } };
  }
  if (response.status === 401 && auth && session.signedIn) {
    endSession(`Your session has ended (${envelope.message || "unauthorised"}). Please sign in again.`);
  }
  return envelope;
}

export const api = {
  get: (path, params) => request("GET", path + query(params)),
  post: (path, body = {}) => request("POST", path, body),
  patch: (path, body = {}) => request("PATCH", path, body),
  del: (path) => request("DELETE", path),
  // For the email links' calls, which carry their own token: a 401 there is about
  // that token, and must not end the session of a user who opened it signed in.
  postPublic: (path, body = {}) => request("POST", path, body, { auth: false }),
};

// Rotates the tokens with the refresh token; a refused refresh ends the session.
export async function refreshTokens() {
  if (!session.refresh) return;
  const answer = await request("POST", "/v1/auth/refresh", { refresh_token: session.refresh }, { auth: false });
  if (answer.success) saveLogin(answer.data);
  else if (answer.http_status_code === 401 || answer.http_status_code === 400) {
    endSession(`Your session could not be renewed (${answer.message}). Please sign in again.`);
  }
}
setRefresher(refreshOnce);

// Fetches a file with the token (a plain link cannot send it) and hands it to
// the browser as a download.
export async function download(path, fileName) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${session.access}` } });
  if (response.status === 401) { endSession("Your session has ended. Please sign in again."); return false; }
  if (!response.ok) return false;
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = fileName;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return true;
}

// PUTs a file's bytes with XMLHttpRequest, whose upload events (unlike
// fetch's) tell how much has gone: `onProgress(sent, total)` as it goes.
// The token is refreshed first like any call's, and the answer is the
// gateway's envelope (or one made for a network failure or an abort).
// `signal` (an AbortSignal) stops the upload.
export async function upload(path, body, { contentType = "application/octet-stream", onProgress, signal } = {}) {
  await freshToken();
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", path);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("Content-Type", contentType);
    if (session.access) xhr.setRequestHeader("Authorization", `Bearer ${session.access}`);
    if (onProgress) {
      xhr.upload.addEventListener("progress", (event) => onProgress(event.loaded, event.lengthComputable ? event.total : body.size));
    }
    xhr.addEventListener("load", () => {
      let envelope;
      try {
        envelope = JSON.parse(xhr.responseText);
      } catch {
        envelope = { success: false, message: `Unexpected answer (HTTP ${xhr.status})`, data: { errors: [] } };
      }
      if (xhr.status === 401 && session.signedIn) {
        endSession(`Your session has ended (${envelope.message || "unauthorised"}). Please sign in again.`);
      }
      resolve(envelope);
    });
    xhr.addEventListener("error", () => resolve(UNREACHABLE));
    xhr.addEventListener("abort", () => resolve({ success: false, message: "The upload was stopped", data: { errors: [] } }));
    if (signal) signal.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.send(body);
  });
}
