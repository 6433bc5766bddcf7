// The signed-in session: tokens in sessionStorage (gone when the tab closes;
// no cookies, so the gateway needs no CSRF defence), refreshed before the
// access token expires, and a notice to the app when the session ends.
const store = window.sessionStorage;
// The chat session of the signed-in user ends with their session in this tab.
const KEYS = ["iot.access_token", "iot.refresh_token", "iot.expires_at", "iot.email", "iot.chat_session"];
// Refresh this long before expiry, so a request in flight never carries a dead token.
const REFRESH_MARGIN_MS = 60_000;

const listeners = new Set();
let refreshTimer = 0;
let endedNotice = null;

export const session = {
  get access() { return store.getItem("iot.access_token"); },
  get refresh() { return store.getItem("iot.refresh_token"); },
  get email() { return store.getItem("iot.email") || ""; },
  get expiresAt() { return Number(store.getItem("iot.expires_at") || 0); },
  get signedIn() { return Boolean(this.access); },
  // The access token's claims, read to shape the console (an admin sees the
  // admin screens); the gateway checks the token itself on every call.
  get claims() { return claimsOf(this.access); },
  get isAdmin() { return this.claims.role === "admin"; },
  // Why the last session ended ({success, message}: a sign-out, a revoked
  // session, a failed refresh), or null; read once by sign-in.
  takeEndedNotice() { const notice = endedNotice; endedNotice = null; return notice; },
  subscribe(listener) { listeners.add(listener); return () => listeners.delete(listener); },
};

function claimsOf(token) {
  try {
    const part = (token || "").split(".")[1].replaceAll("-", "+").replaceAll("_", "/");
    return JSON.parse(atob(part.padEnd(Math.ceil(part.length / 4) * 4, "=")));
  } catch {
    return {};
  }
}

function notify() { for (const listener of listeners) listener(); }

export function saveLogin(login) {
  store.setItem("iot.access_token", login.access_token);
  store.setItem("iot.refresh_token", login.refresh_token);
  store.setItem("iot.expires_at", String(Date.now() + (login.expires_in || 0) * 1000));
  if (login.user && login.user.email) store.setItem("iot.email", login.user.email);
  scheduleRefresh();
  notify();
}

export function endSession(message = "", { ok = false } = {}) {
  for (const key of KEYS) store.removeItem(key);
  clearTimeout(refreshTimer);
  endedNotice = message ? { success: ok, message } : null;
  notify();
}

// The refresh itself lives in api.js (it is a gateway call); it registers here
// to avoid an import cycle.
let refresher = async () => {};
export function setRefresher(fn) { refresher = fn; }

export function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!session.signedIn || !session.expiresAt) return;
  const wait = Math.max(1_000, session.expiresAt - Date.now() - REFRESH_MARGIN_MS);
  refreshTimer = setTimeout(() => refresher(), wait);
}
