// The signed-in user's account: profile (display name, tags), two-factor
// login, sessions (each can be revoked) and the security log.
import { api } from "../api.js";
import { html, useState } from "../lib.js";
import { formatTime, Heading, Message, useLoad, useSubmit } from "../ui.js";
import { TwoFactor } from "./mfa.js";
import { SecurityLog } from "./security-log.js";

export function Account({ params }) {
  const [me, reloadMe] = useLoad(() => api.get("/v1/auth/me"), []);
  // Counts changes made here, so the security log asks again and shows them.
  const [changes, setChanges] = useState(0);
  const changed = () => { reloadMe(); setChanges((count) => count + 1); };
  const user = me && me.success ? me.data.user || me.data : null;
  return html`<div class="stack">
    <section class="card">
      <${Heading}>Account<//>
      ${me && !me.success && html`<${Message} answer=${me} />`}
      ${user && html`<dl class="facts">
        <dt>Email</dt><dd>${user.email}</dd>
        ${user.role && html`<dt>Role</dt><dd>${user.role}</dd>`}
      </dl>`}
    </section>
    <${Profile} />
    ${user && html`<${TwoFactor} enabled=${user.mfa_enabled} onChanged=${changed} />`}
    <${Sessions} />
    <${SecurityLog} params=${params} changes=${changes} />
  </div>`;
}

function Profile() {
  const [answer, reload] = useLoad(() => api.get("/v1/profile"), []);
  const { answer: saved, busy, submit } = useSubmit(async (values) => {
    const tags = values.tags.split(",").map((tag) => tag.trim()).filter(Boolean);
    const got = await api.patch("/v1/profile", { display_name: values.display_name, tags });
    if (got.success) reload();
    return got;
  });
  if (!answer) return null;
  if (!answer.success) return html`<section class="card"><h3>Profile</h3><${Message} answer=${answer} /></section>`;
  const profile = answer.data;
  // The fields take default values, not values: a re-render of the page (the
  // account loading beside it) must not undo what is being typed. A saved
  // profile has a new updated_at, which re-creates the form with what was saved.
  return html`<section class="card">
    <h3>Profile</h3>
    <form id="profile-form" onSubmit=${submit} key=${profile.updated_at}>
      <label>Display name <input name="display_name" required maxlength="100" defaultValue=${profile.display_name} /></label>
      <label>Tags (comma-separated) <input name="tags" defaultValue=${(profile.tags || []).join(", ")} /></label>
      <div class="buttons"><button type="submit" disabled=${busy}>Save</button></div>
    </form>
    <${Message} answer=${saved} />
  </section>`;
}

function Sessions() {
  const [answer, reload] = useLoad(() => api.get("/v1/security/sessions"), []);
  const [result, setResult] = useState(null);
  const revoke = async (id) => {
    const got = await api.del(`/v1/security/sessions/${encodeURIComponent(id)}`);
    setResult(got);
    if (got.success) reload();
  };
  const sessions = answer && answer.success ? answer.data.sessions : [];
  return html`<section class="card">
    <h3>Sessions</h3>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    <div class="table-scroll"><table id="session-table">
      <thead><tr><th scope="col">Device</th><th scope="col">IP</th><th scope="col">Last used</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
      <tbody>${sessions.map((item) => html`<tr key=${item.id}>
        <td>${item.device_info || "unknown"}${item.is_current ? " (this one)" : ""}</td>
        <td>${item.ip_address || "—"}</td>
        <td>${formatTime(item.last_used || item.created_at)}</td>
        <td><button type="button" class="danger small" onClick=${() => revoke(item.id)}>${item.is_current ? "Sign out here" : "Revoke"}</button></td>
      </tr>`)}</tbody>
    </table></div>
    <${Message} answer=${result} />
  </section>`;
}
