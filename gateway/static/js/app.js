// The console's shell: which screen a hash route shows, the header and its
// navigation, sign-out, and the email links that land here with a token.
import { api } from "./api.js";
import { html, render, useEffect, useState } from "./lib.js";
import { navigate, useRoute } from "./router.js";
import { watchScrollRegions } from "./scroll.js";
import { Account } from "./screens/account.js";
import { Anomalies } from "./screens/anomalies.js";
import { Anomaly } from "./screens/anomaly.js";
import { Device } from "./screens/device.js";
import { DeviceChart } from "./screens/device-chart.js";
import { Devices } from "./screens/devices.js";
import { ForgotPassword, Register, ResetPassword, SignIn } from "./screens/signin.js";
import { Status } from "./screens/status.js";
import { Stream } from "./screens/stream.js";
import { endSession, scheduleRefresh, session } from "./session.js";
import { Heading, Lazy, Message } from "./ui.js";

// Screens loaded when first shown, so that the first load (sign-in) stays small.
const ADMIN = () => import("./screens/admin.js");
const ACCOUNTS = () => import("./screens/admin-accounts.js");
const ALERTS = () => import("./screens/alerts.js");
const AGENTS = () => import("./screens/agent-queue.js");
const CHAT = () => import("./screens/chat.js");
const CORRELATION = () => import("./screens/correlation.js");
const IMPORTS = () => import("./screens/imports.js");

const NAV = [["devices", "Devices"], ["anomalies", "Anomalies"], ["alerts", "Alerts"], ["correlations", "Correlations"], ["imports", "Imports"], ["status", "Status"], ["account", "Account"]];
// Shown to admins only (the gateway refuses their routes to anyone else).
const ADMIN_NAV = [["admin", "Admin"]];

// A token in an email link must leave the address bar and the history at once;
// it is kept in memory for the screen that uses it.
let resetToken = "";
async function takeEmailLink(setNotice) {
  const match = /^#\/(verify-email|reset-password)\?(.*)$/.exec(window.location.hash);
  if (!match) return;
  const token = new URLSearchParams(match[2]).get("token") || "";
  history.replaceState(null, "", `${window.location.pathname}${window.location.search}#/${match[1] === "verify-email" ? "" : "reset-password"}`);
  if (match[1] === "reset-password") {
    resetToken = token;
    window.dispatchEvent(new HashChangeEvent("hashchange"));
    return;
  }
  const answer = await api.postPublic("/v1/auth/verify-email", { token });
  setNotice(answer);
  window.dispatchEvent(new HashChangeEvent("hashchange"));
}

function useSignedIn() {
  const [signedIn, setSignedIn] = useState(session.signedIn);
  useEffect(() => session.subscribe(() => setSignedIn(session.signedIn)), []);
  return signedIn;
}

function signedOutScreen(parts, notice, setNotice) {
  switch (parts[0]) {
    case "register": return html`<${Register} />`;
    case "forgot-password": return html`<${ForgotPassword} />`;
    case "reset-password": return html`<${ResetPassword} token=${resetToken} onDone=${setNotice} />`;
    case "status": return html`<${Status} />`;
    case "help": return html`<${Lazy} load=${CHAT} name="HelpArticle" slug=${parts[1]} key=${parts[1]} />`;
    default: return html`<${SignIn} notice=${notice} key=${notice ? notice.message : ""} />`;
  }
}

function signedInScreen(parts, params) {
  const [section, id] = parts;
  switch (section) {
    // A reset link opened while signed in still resets: every session ends with it,
    // this one too, so sign-in follows with the outcome.
    case "reset-password":
      return resetToken
        ? html`<${ResetPassword} token=${resetToken} onDone=${(done) => { resetToken = ""; endSession(done.message, { ok: true }); }} />`
        : null;
    case "devices":
      if (!id) return html`<${Devices} params=${params} />`;
      return parts[2] === "chart"
        ? html`<${DeviceChart} deviceId=${id} params=${params} key=${id} />`
        : html`<${Device} deviceId=${id} key=${id} />`;
    case "streams": return html`<${Stream} streamId=${id} params=${params} key=${id} />`;
    case "anomalies": return id ? html`<${Anomaly} anomalyId=${id} key=${id} />` : html`<${Anomalies} params=${params} />`;
    case "alerts": return html`<${Lazy} load=${ALERTS} name="Alerts" params=${params} />`;
    case "status": return html`<${Status} />`;
    case "account": return html`<${Account} params=${params} />`;
    case "admin": return adminScreen(parts.slice(1), params);
    case "correlations":
      return id
        ? html`<${Lazy} load=${CORRELATION} name="CorrelationResult" correlationId=${id} key=${id} />`
        : html`<${Lazy} load=${CORRELATION} name="Correlations" params=${params} />`;
    case "imports":
      return id
        ? html`<${Lazy} load=${IMPORTS} name="ImportBatch" batchId=${id} params=${params} key=${id} />`
        : html`<${Lazy} load=${IMPORTS} name="Imports" params=${params} />`;
    case "help": return html`<${Lazy} load=${CHAT} name="HelpArticle" slug=${id} key=${id} />`;
    case undefined: return null;
    default: return html`<section class="card"><h2>Not found</h2><p>No screen is called “${parts.join("/")}”. <a href="#/devices">Go to the devices</a>.</p></section>`;
  }
}

function NotAdmin() {
  return html`<section class="card"><${Heading}>Admins only<//>
    <p>These screens are for administrators. <a href="#/devices">Go to the devices</a>.</p></section>`;
}

function adminScreen([section, id], params) {
  if (!session.isAdmin) return html`<${NotAdmin} />`;
  switch (section) {
    case "users": case undefined:
      return id
        ? html`<${Lazy} load=${ADMIN} name="User" userId=${id} key=${id} />`
        : html`<${Lazy} load=${ADMIN} name="Users" params=${params} />`;
    case "accounts":
      return id
        ? html`<${Lazy} load=${ACCOUNTS} name="Account" accountId=${id} key=${id} />`
        : html`<${Lazy} load=${ACCOUNTS} name="Accounts" params=${params} />`;
    case "chat":
      return id
        ? html`<${Lazy} load=${AGENTS} name="AgentSession" sessionId=${id} key=${id} />`
        : html`<${Lazy} load=${AGENTS} name="AgentQueue" params=${params} />`;
    default: return html`<section class="card"><h2>Not found</h2><p><a href="#/admin/users">Go to the users</a>.</p></section>`;
  }
}

function App() {
  const { parts, params } = useRoute();
  const signedIn = useSignedIn();
  // What sign-in shows on arrival: an envelope-like {success, message}, or null.
  const [notice, setNotice] = useState(null);
  useEffect(() => { takeEmailLink(setNotice); }, [parts.join("/"), params.token]);
  // Signing in starts with no notice left over from the sign-in screen.
  useEffect(() => { if (signedIn) { scheduleRefresh(); setNotice(null); } }, [signedIn]);
  // A session that ends (sign-out, a 401, a failed refresh) brings its reason to sign-in.
  useEffect(() => session.subscribe(() => { if (!session.signedIn) setNotice(session.takeEndedNotice()); }), []);
  // Signed in with no screen named (or on a signed-out screen), the devices are home.
  useEffect(() => {
    const resetting = parts[0] === "reset-password" && resetToken;
    if (signedIn && !resetting && (parts.length === 0 || ["register", "forgot-password", "reset-password"].includes(parts[0]))) {
      navigate("/devices", {}, { replace: true });
    }
  }, [signedIn, parts.join("/")]);
  const logout = async () => {
    await api.post("/v1/auth/logout", {});
    endSession("You are signed out.", { ok: true });
  };
  const section = parts[0] || "";
  return html`
    <a class="skip-link" href="#main" onClick=${(event) => { event.preventDefault(); document.getElementById("main").focus(); }}>Skip to content</a>
    <header>
      <h1><a href="#/">iotsuite</a></h1>
      ${signedIn && html`<nav aria-label="Main"><ul>
        ${[...NAV, ...(session.isAdmin ? ADMIN_NAV : [])].map(([key, label]) => html`<li><a href=${`#/${key}`} aria-current=${section === key ? "page" : undefined}>${label}</a></li>`)}
      </ul></nav>`}
      <div class="who">
        <a href="/docs" id="api-docs-link">API</a>
        <span class="muted" id="who">${signedIn ? session.email || "signed in" : "not signed in"}</span>
        ${signedIn && html`<button type="button" class="secondary small" id="logout-button" onClick=${logout}>Log out</button>`}
      </div>
    </header>
    <main id="main" tabindex="-1">
      ${signedIn && notice && html`<div class="card notice" id="notice">
        <${Message} answer=${notice} />
        <button type="button" class="secondary small" onClick=${() => setNotice(null)}>Dismiss</button>
      </div>`}
      ${signedIn ? signedInScreen(parts, params) : signedOutScreen(parts, notice, setNotice)}
    </main>
    <${Lazy} load=${CHAT} name="ChatWidget" quiet=${true} signedIn=${signedIn} key=${signedIn ? "signed-in" : "anonymous"} />`;
}

// Preact renders beside what the container holds, so the no-JavaScript notice goes first.
const root = document.getElementById("app");
root.replaceChildren();
render(html`<${App} />`, root);
watchScrollRegions(root);
