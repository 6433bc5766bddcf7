// Admin: the users (search, role and status filters kept in the URL, paging),
// one user's account and security summary, their role, and activating or
// deactivating them (asked first). Shown only to admins; the gateway refuses
// these routes to anyone without the admin scope anyway.
import { api } from "../api.js";
import { html, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { session } from "../session.js";
import {
  Confirm, errorProps, FieldError, formatTime, Heading, Message, pageOf, Pager, useLoad, useSearch, useSubmit,
} from "../ui.js";

export const ROLES = ["user", "admin"];
const PAGE_SIZE = 20;
const SECTIONS = [["users", "Users"], ["accounts", "Accounts and sites"], ["chat", "Chat queue"]];

// The admin screens' own navigation, under the main one.
export function AdminNav({ current }) {
  return html`<nav class="subnav" aria-label="Admin">
    <ul>${SECTIONS.map(([key, label]) => html`<li>
      <a href=${`#/admin/${key}`} aria-current=${current === key ? "page" : undefined}>${label}</a>
    </li>`)}</ul>
  </nav>`;
}

export function Users({ params }) {
  const filters = {
    page: pageOf(params.page),
    search: params.search || "",
    role: params.role || "",
    is_active: params.is_active || "",
  };
  const [answer] = useLoad(
    () => api.get("/v1/admin/users", { ...filters, limit: PAGE_SIZE }),
    [filters.page, filters.search, filters.role, filters.is_active],
  );
  const change = (update, replace = false) => navigate("/admin/users", { ...filters, page: 1, ...update }, { replace });
  const [search, setSearch] = useSearch(filters.search, (text, replace) => change({ search: text }, replace));
  const users = answer && answer.success ? answer.data.users : [];
  return html`<section class="card wide">
    <${AdminNav} current="users" />
    <${Heading}>Users<//>
    <form class="filters" role="search" onSubmit=${(event) => event.preventDefault()}>
      <label>Email or name contains <input type="search" name="search" value=${search} onInput=${(event) => setSearch(event.currentTarget.value)} /></label>
      <label>Role <select name="role" value=${filters.role} onChange=${(event) => change({ role: event.currentTarget.value })}>
        <option value="">any</option>${ROLES.map((role) => html`<option value=${role}>${role}</option>`)}
      </select></label>
      <label>Status <select name="is_active" value=${filters.is_active} onChange=${(event) => change({ is_active: event.currentTarget.value })}>
        <option value="">any</option><option value="true">active</option><option value="false">deactivated</option>
      </select></label>
    </form>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    <div class="table-scroll"><table id="user-table">
      <thead><tr><th scope="col">Email</th><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Status</th>
        <th scope="col">Verified</th><th scope="col">Last login</th><th scope="col">Created</th></tr></thead>
      <tbody>${users.map((user) => html`<tr key=${user.uuid}>
        <td><a href=${href(`/admin/users/${user.uuid}`)}>${user.email}</a></td>
        <td>${(user.profile && user.profile.display_name) || "—"}</td>
        <td>${user.role}</td>
        <td><span class=${`badge status-${user.is_active ? "active" : "inactive"}`}>${user.is_active ? "active" : "deactivated"}</span></td>
        <td>${user.is_verified ? "yes" : "no"}</td>
        <td>${formatTime(user.last_login_at)}</td>
        <td>${formatTime(user.created_at)}</td>
      </tr>`)}</tbody>
    </table></div>
    ${answer && answer.success && answer.data.pagination?.total === 0 && html`<p class="muted">No user matches.</p>`}
    <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${(page) => navigate("/admin/users", { ...filters, page })} />
  </section>`;
}

export function User({ userId }) {
  const path = `/v1/admin/users/${encodeURIComponent(userId)}`;
  const [answer, reload] = useLoad(() => api.get(path), [path]);
  const [changed, setChanged] = useState(null);
  if (!answer) return html`<p class="loading">Loading…</p>`;
  if (!answer.success) {
    return html`<section class="card"><${Heading}>User<//><${Message} answer=${answer} />
      <p><a href="#/admin/users">All users</a></p></section>`;
  }
  const { user, profile, security_info: security } = answer.data;
  const self = session.claims.sub === user.uuid;
  const update = async (body) => {
    const got = await api.patch(path, body);
    setChanged(got);
    if (got.success) reload();
    return got;
  };
  return html`<div class="stack">
    <section class="card">
      <${AdminNav} current="users" />
      <p class="crumbs"><a href="#/admin/users">Users</a> /</p>
      <${Heading}>${user.email}<//>
      <dl class="facts" id="user-facts">
        <dt>Name</dt><dd>${(profile && profile.display_name) || "—"}</dd>
        <dt>Role</dt><dd>${user.role}</dd>
        <dt>Status</dt><dd><span class=${`badge status-${user.is_active ? "active" : "inactive"}`}>${user.is_active ? "active" : "deactivated"}</span></dd>
        <dt>Email verified</dt><dd>${user.is_verified ? "yes" : user.verification_pending ? `no (link out until ${formatTime(user.verification_expires)})` : "no"}</dd>
        <dt>Two-factor</dt><dd>${user.mfa_enabled ? "on" : "off"}</dd>
        <dt>Password reset</dt><dd>${user.reset_pending ? `link out until ${formatTime(user.reset_token_expiry)}` : "none pending"}</dd>
        <dt>Last login</dt><dd>${formatTime(user.last_login_at)}</dd>
        <dt>Created</dt><dd>${formatTime(user.created_at)}</dd>
        <dt>Updated</dt><dd>${formatTime(user.updated_at)}</dd>
      </dl>
      ${self && html`<p class="muted">This is you: you cannot change your own role or status.</p>`}
      <${RoleForm} user=${user} onSave=${update} disabled=${self} />
      <div class="buttons">
        ${user.is_active
          ? html`<${Confirm} id="deactivate-user" label="Deactivate…" disabled=${self} yes=${`Yes, deactivate ${user.email}`}
              question="Deactivate this user? Their sessions end now and they can no longer sign in."
              onConfirm=${() => update({ is_active: false })} />`
          : html`<${Confirm} id="activate-user" label="Activate…" danger=${false} disabled=${self} yes=${`Yes, activate ${user.email}`}
              question="Activate this user? They can sign in again." onConfirm=${() => update({ is_active: true })} />`}
      </div>
      <${Message} answer=${changed} inline=${["role"]} />
    </section>
    <section class="card" id="security-info">
      <h3>Security</h3>
      <dl class="facts">
        <dt>Active sessions</dt><dd>${security.active_sessions}</dd>
        <dt>Sessions ever</dt><dd>${security.total_sessions}</dd>
        <dt>Failed logins since the last success</dt><dd>${security.failed_login_attempts}</dd>
        <dt>Last security incident</dt><dd>${formatTime(security.last_security_incident)}</dd>
      </dl>
    </section>
  </div>`;
}

function RoleForm({ user, onSave, disabled }) {
  const { answer, busy, submit } = useSubmit((values) => onSave({ role: values.role }));
  return html`<form class="inline-form" id="role-form" onSubmit=${submit}>
    <label>Role <select name="role" value=${user.role} disabled=${disabled} ...${errorProps(answer, "role")}>
      ${ROLES.map((role) => html`<option value=${role}>${role}</option>`)}
    </select><${FieldError} answer=${answer} field="role" /></label>
    <div class="buttons"><button type="submit" disabled=${busy || disabled}>Change the role</button></div>
  </form>`;
}
