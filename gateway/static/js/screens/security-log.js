// The account's security log: sign-ins, password and MFA changes, revoked
// sessions; a page at a time, filtered by action, both in the URL.
import { api } from "../api.js";
import { html } from "../lib.js";
import { navigate } from "../router.js";
import { formatTime, Message, Pager, useLoad } from "../ui.js";

// The actions auth records (services/auth/security/values.py).
const ACTIONS = [
  "login_success", "login_failed", "logout", "refresh_token_reuse", "password_changed",
  "password_reset", "password_reset_requested", "email_verified", "mfa_enabled", "mfa_disabled",
  "recovery_codes_regenerated", "session_revoked", "sessions_revoked", "profile_updated",
  "data_exported", "admin_update",
];

export function SecurityLog({ params, changes }) {
  const page = Number(params.log_page || 1);
  const action = params.action || "";
  const [answer] = useLoad(() => api.get("/v1/security/logs", { page, limit: 20, action }), [page, action, changes]);
  const go = (update) => navigate("/account", { log_page: page, action, ...update });
  const entries = answer && answer.success ? answer.data.logs : [];
  return html`<section class="card">
    <h3>Security log</h3>
    <form class="filters" onSubmit=${(event) => event.preventDefault()}>
      <label>Action <select value=${action} onChange=${(event) => go({ action: event.currentTarget.value, log_page: 1 })}>
        <option value="">any</option>${ACTIONS.map((name) => html`<option value=${name}>${name.replaceAll("_", " ")}</option>`)}
      </select></label>
    </form>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    <div class="table-scroll"><table id="security-log">
      <thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Result</th><th scope="col">IP</th><th scope="col">Client</th></tr></thead>
      <tbody>${entries.map((entry) => html`<tr key=${entry.id}>
        <td>${formatTime(entry.timestamp)}</td>
        <td>${entry.action.replaceAll("_", " ")}</td>
        <td>${entry.success ? "ok" : "failed"}</td>
        <td>${entry.ip_address || "—"}</td>
        <td class="clip" title=${entry.user_agent}>${entry.user_agent || "—"}</td>
      </tr>`)}</tbody>
    </table></div>
    ${answer && answer.success && entries.length === 0 && html`<p class="muted">Nothing recorded.</p>`}
    <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${(next) => go({ log_page: next })} />
  </section>`;
}
