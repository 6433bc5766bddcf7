// iotsuite web console: plain JavaScript talking to the REST gateway.
// The access token lives in memory and sessionStorage only (gone when the tab
// closes); no cookies, so the gateway needs no CSRF defence. Server text is
// always inserted with textContent, never as HTML.
"use strict";

const store = window.sessionStorage;
const session = {
  get access() { return store.getItem("iot.access_token"); },
  get refresh() { return store.getItem("iot.refresh_token"); },
  save(login) {
    store.setItem("iot.access_token", login.access_token);
    store.setItem("iot.refresh_token", login.refresh_token);
    const expires = Date.now() + (login.expires_in || 0) * 1000;
    store.setItem("iot.expires_at", String(expires));
    store.setItem("iot.email", (login.user && login.user.email) || "");
  },
  clear() {
    for (const key of ["iot.access_token", "iot.refresh_token", "iot.expires_at", "iot.email"]) {
      store.removeItem(key);
    }
  },
};

const $ = (selector) => document.querySelector(selector);

// Calls the gateway; answers the parsed envelope (or raw JSON) and never throws for HTTP errors.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (session.access) headers.Authorization = `Bearer ${session.access}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    return { success: false, message: "The gateway cannot be reached", data: { errors: [] } };
  }
  try {
    return await response.json();
  } catch (error) {
    return { success: false, message: `Unexpected answer (HTTP ${response.status})`, data: { errors: [] } };
  }
}

function showMessage(envelope, okText) {
  const box = $("#auth-message");
  box.replaceChildren();
  const line = document.createElement("p");
  line.className = envelope.success ? "message-ok" : "message-error";
  line.textContent = envelope.success ? okText || envelope.message : envelope.message;
  box.append(line);
  const errors = (envelope.data && envelope.data.errors) || [];
  if (!envelope.success && errors.length) {
    const list = document.createElement("ul");
    for (const item of errors) {
      const entry = document.createElement("li");
      entry.textContent = item.field ? `${item.field}: ${item.message}` : item.message;
      list.append(entry);
    }
    box.append(list);
  }
}

function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

async function busy(button, work) {
  button.disabled = true;
  try { await work(); } finally { button.disabled = false; }
}

// The forms of the account card other than the login form; one shows at a time.
const OTHER_FORMS = ["#register-form", "#forgot-form", "#reset-form"];

function render() {
  const signedIn = Boolean(session.access);
  $("#login-form").hidden = signedIn || OTHER_FORMS.some((id) => !$(id).hidden);
  $("#session").hidden = !signedIn;
  $("#who").textContent = signedIn ? `signed in as ${store.getItem("iot.email") || "?"}` : "not signed in";
  const expires = Number(store.getItem("iot.expires_at") || 0);
  $("#token-expiry").textContent = signedIn && expires
    ? `Access token expires at ${new Date(expires).toLocaleTimeString()}`
    : "";
  if (!signedIn) $("#me-output").hidden = true;
}

async function login(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const values = formValues(form);
  const body = { email: values.email, password: values.password };
  if (values.mfa_code) body.mfa_code = values.mfa_code;
  await busy(form.querySelector("button[type=submit]"), async () => {
    const answer = await api("POST", "/v1/auth/login", body);
    if (answer.success && answer.data.mfa_required) {
      $("#mfa-row").hidden = false;
      showMessage({ success: false, message: answer.message, data: {} });
      return;
    }
    if (answer.success) {
      session.save(answer.data);
      form.reset();
      $("#mfa-row").hidden = true;
    }
    showMessage(answer);
    render();
  });
}

async function register(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const values = formValues(form);
  const body = { email: values.email, password: values.password, mfa_enabled: values.mfa_enabled === "on" };
  if (values.display_name) body.display_name = values.display_name;
  await busy(form.querySelector("button[type=submit]"), async () => {
    const answer = await api("POST", "/v1/auth/register", body);
    if (answer.success) {
      form.reset();
      showForm(null);  // before the message: switching forms clears it
    }
    showMessage(answer, answer.success ? `${answer.message}. You can log in now.` : undefined);
  });
}

async function showMe(event) {
  await busy(event.currentTarget, async () => {
    const answer = await api("GET", "/v1/auth/me");
    showMessage(answer);
    const output = $("#me-output");
    output.hidden = !answer.success;
    output.textContent = answer.success ? JSON.stringify(answer.data, null, 2) : "";
    if (!answer.success && answer.http_status_code === 401) { session.clear(); render(); }
  });
}

async function refresh(event) {
  await busy(event.currentTarget, async () => {
    const answer = await api("POST", "/v1/auth/refresh", { refresh_token: session.refresh || "" });
    if (answer.success) session.save(answer.data);
    else if (answer.http_status_code === 401) session.clear();
    showMessage(answer);
    render();
  });
}

async function logout(event) {
  await busy(event.currentTarget, async () => {
    const answer = await api("POST", "/v1/auth/logout", {});
    // The local session ends even if the server already forgot it.
    session.clear();
    showMessage(answer.success ? answer : { success: true, message: "Logged out", data: {} });
    render();
  });
}

// Shows one of OTHER_FORMS instead of the login form, or (null) the login form again.
function showForm(id) {
  for (const other of OTHER_FORMS) $(other).hidden = other !== id;
  $("#login-form").hidden = id !== null;
  $("#auth-message").replaceChildren();
  if (id === null) render();
}

async function forgot(event) {
  event.preventDefault();
  const form = event.currentTarget;
  await busy(form.querySelector("button[type=submit]"), async () => {
    const answer = await api("POST", "/v1/auth/forgot-password", { email: formValues(form).email });
    if (answer.success) { form.reset(); showForm(null); }
    showMessage(answer);
  });
}

async function resetPassword(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const body = { token: form.dataset.token || "", password: formValues(form).password };
  await busy(form.querySelector("button[type=submit]"), async () => {
    const answer = await api("POST", "/v1/auth/reset-password", body);
    if (answer.success) {
      form.reset();
      delete form.dataset.token;
      session.clear();
      showForm(null);
    }
    showMessage(answer, answer.success ? `${answer.message}. Log in with the new password.` : undefined);
  });
}

// The links in the emails auth sends: #/verify-email?token=… and #/reset-password?token=….
async function followEmailLink() {
  const match = /^#\/(verify-email|reset-password)\?(.*)$/.exec(window.location.hash);
  if (!match) return;
  const token = new URLSearchParams(match[2]).get("token") || "";
  // The token must not stay in the address bar or the history.
  history.replaceState(null, "", window.location.pathname + window.location.search);
  if (match[1] === "verify-email") {
    const answer = await api("POST", "/v1/auth/verify-email", { token });
    showMessage(answer);
  } else {
    $("#reset-form").dataset.token = token;
    showForm("#reset-form");
  }
}

async function checkStatus() {
  const button = $("#status-button");
  await busy(button, async () => {
    const answer = await api("GET", "/v1/system/status");
    const summary = $("#status-summary");
    const table = $("#status-table");
    const body = table.querySelector("tbody");
    body.replaceChildren();
    if (!answer.success) {
      summary.textContent = answer.message;
      summary.className = "message-error";
      table.hidden = true;
      $("#status-metrics").textContent = "";
      return;
    }
    const status = answer.data;
    summary.textContent = `Overall: ${status.status} (version ${status.version || "?"})`;
    summary.className = `state-${status.status}`;
    for (const [name, state] of Object.entries(status.services || {})) {
      const row = document.createElement("tr");
      const label = document.createElement("td");
      label.textContent = name.replaceAll("_", " ");
      const value = document.createElement("td");
      value.textContent = state || "unknown";
      value.className = `state-${state}`;
      row.append(label, value);
      body.append(row);
    }
    table.hidden = false;
    const metrics = status.metrics || {};
    const rate = typeof metrics.error_rate === "number" ? (metrics.error_rate * 100).toFixed(2) : "?";
    $("#status-metrics").textContent =
      `${metrics.active_users ?? "?"} active users · ${metrics.total_requests ?? "?"} requests · ${rate}% errors`;
  });
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-form").addEventListener("submit", login);
  $("#register-form").addEventListener("submit", register);
  $("#register-toggle").addEventListener("click", () => showForm("#register-form"));
  $("#register-cancel").addEventListener("click", () => showForm(null));
  $("#forgot-toggle").addEventListener("click", () => showForm("#forgot-form"));
  $("#forgot-form").addEventListener("submit", forgot);
  $("#reset-form").addEventListener("submit", resetPassword);
  for (const button of document.querySelectorAll("form .cancel")) {
    button.addEventListener("click", () => showForm(null));
  }
  window.addEventListener("hashchange", followEmailLink);
  $("#me-button").addEventListener("click", showMe);
  $("#refresh-button").addEventListener("click", refresh);
  $("#logout-button").addEventListener("click", logout);
  $("#status-button").addEventListener("click", checkStatus);
  render();
  checkStatus();
  followEmailLink();
});
