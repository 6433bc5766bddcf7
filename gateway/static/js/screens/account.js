// The signed-in user's account: profile (display name, tags, time zone),
// two-factor login, a download of the user's data, sessions (each can be
// revoked; this one signs out) and the security log.
import { api, download } from "../api.js";
import { html, useState } from "../lib.js";
import { endSession } from "../session.js";
import { described, Field, FieldError, formatTime, Heading, Message, useBusy, useLoad, useSubmit } from "../ui.js";
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
    <${Profile} onChanged=${changed} />
    ${user && html`<${TwoFactor} enabled=${user.mfa_enabled} requested=${!user.mfa_enabled && !user.is_configured} onChanged=${changed} />`}
    <${DataDownload} onChanged=${changed} />
    <${Sessions} />
    <${SecurityLog} params=${params} changes=${changes} />
  </div>`;
}

// The IANA zones this browser knows, and its own. Chat periods ("last night")
// and alert quiet hours are read in the profile's metadata `timezone`.
const BROWSER_ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
function zones(saved) {
  const known = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
  const names = new Set([...known, BROWSER_ZONE, ...(saved ? [saved] : [])]);
  names.delete("UTC");
  return ["UTC", ...[...names].sort()];
}

// The profile's metadata is replaced as a whole: the zone goes in beside the rest.
function withZone(metadata, zone) {
  const { timezone, ...rest } = metadata || {};
  return zone ? { ...rest, timezone: zone } : rest;
}

const PROFILE_FIELDS = ["display_name", "tags", "metadata", "metadata.timezone"];

function Profile({ onChanged }) {
  const [answer, reload] = useLoad(() => api.get("/v1/profile"), []);
  const { answer: saved, busy, submit } = useSubmit(async (values) => {
    const tags = values.tags.split(",").map((tag) => tag.trim()).filter(Boolean);
    const metadata = withZone(answer.data.metadata, values.timezone);
    const got = await api.patch("/v1/profile", { display_name: values.display_name, tags, metadata });
    if (got.success) { reload(); onChanged(); }
    return got;
  });
  if (!answer) return null;
  if (!answer.success) return html`<section class="card"><h3>Profile</h3><${Message} answer=${answer} /></section>`;
  const profile = answer.data;
  const zone = (profile.metadata && profile.metadata.timezone) || "";
  // The fields take default values, not values: a re-render of the page (the
  // account loading beside it) must not undo what is being typed. A saved
  // profile has a new updated_at, which re-creates the form with what was saved.
  return html`<section class="card">
    <h3>Profile</h3>
    <form id="profile-form" onSubmit=${submit} key=${profile.updated_at}>
      <${Field} label="Display name" name="display_name" answer=${saved} required maxlength="100" defaultValue=${profile.display_name} />
      <${Field} label="Tags (comma-separated)" name="tags" answer=${saved} defaultValue=${(profile.tags || []).join(", ")} />
      <label>Time zone <select name="timezone" ...${described(saved, "metadata.timezone", "timezone-hint")}>
        <option value="">Not set (UTC)</option>
        ${zones(zone).map((name) => html`<option value=${name} selected=${name === (zone || BROWSER_ZONE)}>
          ${name === BROWSER_ZONE ? `${name} (this browser)` : name}</option>`)}
      </select><${FieldError} answer=${saved} field="metadata" /><${FieldError} answer=${saved} field="metadata.timezone" /></label>
      <p class="muted" id="timezone-hint">${zone
        ? "The chat's periods (“last night”) and your alerts' quiet hours are read in this zone."
        : `None saved yet: the chat and your alerts' quiet hours use UTC. This browser's zone, ${BROWSER_ZONE}, is suggested; Save keeps it.`}</p>
      <div class="buttons"><button type="submit" disabled=${busy}>Save</button></div>
    </form>
    <${Message} answer=${saved} inline=${PROFILE_FIELDS} />
  </section>`;
}

// The user's data (profile, security log, sessions, preferences) as a file:
// auth prepares it and answers a signed link, fetched here and saved under
// the name the link ends with.
function DataDownload({ onChanged }) {
  const [answer, setAnswer] = useState(null);
  const [busy, run] = useBusy();
  const fetchData = (event) => {
    event.preventDefault();
    const format = event.currentTarget.elements.format.value;
    run(async () => {
      const got = await api.post("/v1/security/download-data", { format });
      if (got.success) {
        // The link names the gateway as configured; this page reaches it at its own origin.
        const link = new URL(got.data.download_url, window.location.href);
        const name = decodeURIComponent(link.pathname.split("/").pop());
        const fetched = await download(`${link.pathname}${link.search}`, name);
        setAnswer(fetched
          ? { success: true, message: `Downloaded ${name}` }
          : { success: false, message: "The file could not be fetched; try again" });
        onChanged();
        return;
      }
      setAnswer(got);
    });
  };
  return html`<section class="card">
    <h3>Your data</h3>
    <p class="muted">Your profile, security log, sessions and preferences, as one file.</p>
    <form class="inline-form" id="data-download-form" onSubmit=${fetchData}>
      <label>Format <select name="format" ...${described(answer, "format")}>
        <option value="json">JSON</option><option value="csv">CSV</option><option value="xml">XML</option>
      </select><${FieldError} answer=${answer} field="format" /></label>
      <div class="buttons"><button type="submit" disabled=${busy}>Download my data</button></div>
    </form>
    <${Message} answer=${answer} inline=${["format"]} />
  </section>`;
}

function Sessions() {
  const [answer, reload] = useLoad(() => api.get("/v1/security/sessions"), []);
  const [result, setResult] = useState(null);
  // This tab's own session ends as the header's "Log out" does: back to
  // sign-in, told so, rather than by the next call's 401.
  const revoke = async (item) => {
    const got = await api.del(`/v1/security/sessions/${encodeURIComponent(item.id)}`);
    if (got.success && item.is_current) {
      endSession("You are signed out.", { ok: true });
      return;
    }
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
        <td><button type="button" class="danger small" onClick=${() => revoke(item)}>${item.is_current ? "Sign out here" : "Revoke"}</button></td>
      </tr>`)}</tbody>
    </table></div>
    <${Message} answer=${result} />
  </section>`;
}
