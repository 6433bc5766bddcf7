// The account's security log: sign-ins, password and MFA changes, revoked
// sessions; a page at a time, filtered by action, both in the URL.
import { api } from "../api.js";
import { html, useEffect } from "../lib.js";
import { navigate } from "../router.js";
import { formatTime, Message, pageOf, Pager, useLoad } from "../ui.js";

// The actions auth records (services/auth/security/values.py).
const ACTIONS = [
  "login_success", "login_failed", "logout", "refresh_token_reuse", "password_changed",
  "password_reset", "password_reset_requested", "email_verified", "mfa_enabled", "mfa_disabled",
  "recovery_codes_regenerated", "session_revoked", "sessions_revoked", "profile_updated",
  "data_exported", "admin_update",
];

export function SecurityLog({ params, changes }) {
  const page = pageOf(params.log_page);
  // An action the log does not know (a mistyped link) filters nothing: the
  // select shows "All", and the screen says what was dropped.
  const unknown = params.action && !ACTIONS.includes(params.action) ? params.action : "";
  const action = unknown ? "" : params.action || "";
  const [answer] = useLoad(() => api.get("/v1/security/logs", { page, limit: 20, action }), [page, action, changes]);
  const go = (update, options) => navigate("/account", { log_page: page, action, ...update }, options);
  const entries = answer && answer.success ? answer.data.logs : [];
  const pagination = answer && answer.success ? answer.data.pagination : null;
  // A page past the last (an old link, entries gone) shows the last one
  // instead, once the answer for this page says which that is.
  const last = pagination ? Math.max(1, pagination.total_pages || 0) : page;
  const past = Boolean(pagination) && pagination.page === page && page > last;
  useEffect(() => { if (past) go({ log_page: last }, { replace: true }); }, [past, last]);
  return html`<section class="card">
    <h3>Security log</h3>
    <form class="filters" onSubmit=${(event) => event.preventDefault()}>
      <label>Action <select value=${action} onChange=${(event) => go({ action: event.currentTarget.value, log_page: 1 })}>
        <option value="">All</option>${ACTIONS.map((name) => html`<option value=${name}>${name.replaceAll("_", " ")}</option>`)}
      </select></label>
    </form>
    ${unknown && html`<p class="muted" id="unknown-action">No action is called “${unknown}”: every action is shown.</p>`}
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
    ${past && html`<p class="loading">Going to page ${last}, the last…</p>`}
    ${!past && answer && answer.success && entries.length === 0 && html`<p class="muted">Nothing recorded.</p>`}
    ${!past && html`<${Pager} pagination=${pagination} onPage=${(next) => go({ log_page: next })} />`}
  </section>`;
}
