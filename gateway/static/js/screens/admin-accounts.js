// Admin: accounts (search, paging, create) and one account with its settings
// and its upload sites: create a site, activate or deactivate it, rotate its
// client secret. A secret is shown once, when a site is created or rotated,
// with a copy button; the server keeps only its hash.
import { api } from "../api.js";
import { html, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import {
  Confirm, CopyButton, Field, formatTime, Heading, Message, pageOf, Pager, useLoad, useSearch, useSubmit,
} from "../ui.js";
import { AdminNav } from "./admin.js";

const PAGE_SIZE = 20;

export function Accounts({ params }) {
  const filters = { page: pageOf(params.page), search: params.search || "" };
  const [answer, reload] = useLoad(
    () => api.get("/v1/admin/accounts", { ...filters, limit: PAGE_SIZE }), [filters.page, filters.search],
  );
  const [search, setSearch] = useSearch(filters.search, (text, replace) => navigate("/admin/accounts", { search: text }, { replace }));
  const accounts = answer && answer.success ? answer.data.accounts : [];
  return html`<section class="card wide">
    <${AdminNav} current="accounts" />
    <${Heading}>Accounts<//>
    <p class="muted">An account groups the upload sites of one customer; its sites write the devices of its owner.</p>
    <${CreateAccount} onCreated=${reload} />
    <form class="filters" role="search" onSubmit=${(event) => event.preventDefault()}>
      <label>Name or email contains <input type="search" value=${search} onInput=${(event) => setSearch(event.currentTarget.value)} /></label>
    </form>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    <div class="table-scroll"><table id="account-table">
      <thead><tr><th scope="col">Name</th><th scope="col">Email</th><th scope="col">Status</th><th scope="col">Open batches allowed</th><th scope="col">Created</th></tr></thead>
      <tbody>${accounts.map((account) => html`<tr key=${account.id}>
        <td><a href=${href(`/admin/accounts/${account.id}`)}>${account.name}</a></td>
        <td>${account.email}</td>
        <td><${ActiveBadge} active=${account.is_active} /></td>
        <td>${account.max_concurrent_batches}</td>
        <td>${formatTime(account.created_at)}</td>
      </tr>`)}</tbody>
    </table></div>
    ${answer && answer.success && answer.data.pagination?.total === 0 && html`<p class="muted">No account matches.</p>`}
    <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${(page) => navigate("/admin/accounts", { ...filters, page })} />
  </section>`;
}

function ActiveBadge({ active }) {
  return html`<span class=${`badge status-${active ? "active" : "inactive"}`}>${active ? "active" : "deactivated"}</span>`;
}

// Optional fields are left out of the request when empty.
function filled(values) {
  const body = {};
  for (const [key, value] of Object.entries(values)) {
    if (value === "") continue;
    body[key] = key === "max_concurrent_batches" ? Number(value) : value;
  }
  return body;
}

function CreateAccount({ onCreated }) {
  const [open, setOpen] = useState(false);
  const { answer, busy, submit } = useSubmit(async (values) => {
    const got = await api.post("/v1/admin/accounts", filled(values));
    if (got.success) {
      onCreated();
      navigate(`/admin/accounts/${got.data.id}`);
    }
    return got;
  });
  if (!open) return html`<div class="buttons"><button type="button" onClick=${() => setOpen(true)}>Create an account…</button></div>`;
  return html`<form class="inline-form" id="create-account-form" onSubmit=${submit}>
    <${Field} label="Name" name="name" answer=${answer} required maxlength="100" />
    <${Field} label="Contact email" name="email" answer=${answer} type="email" required maxlength="255" />
    <${Field} label="Open batches allowed" name="max_concurrent_batches" answer=${answer} type="number" min="1" max="1000" placeholder="5" />
    <${Field} label="Owner (user id)" name="owner_user_id" answer=${answer} />
    <div class="buttons">
      <button type="submit" disabled=${busy}>Create</button>
      <button type="button" class="secondary" onClick=${() => setOpen(false)}>Cancel</button>
    </div>
    <${Message} answer=${answer && !answer.success ? answer : null} inline=${["name", "email", "max_concurrent_batches", "owner_user_id"]} />
  </form>`;
}

export function Account({ accountId }) {
  const path = `/v1/admin/accounts/${encodeURIComponent(accountId)}`;
  const [answer, reload] = useLoad(() => api.get(path), [path]);
  const [changed, setChanged] = useState(null);
  const { answer: edited, busy, submit } = useSubmit(async (values) => {
    // An emptied owner is sent as "", which leaves the account with none.
    const got = await api.patch(path, { ...filled(values), owner_user_id: values.owner_user_id.trim() });
    if (got.success) reload();
    return got;
  });
  if (!answer) return html`<p class="loading">Loading…</p>`;
  if (!answer.success) {
    return html`<section class="card"><${Heading}>Account<//><${Message} answer=${answer} />
      <p><a href="#/admin/accounts">All accounts</a></p></section>`;
  }
  const account = answer.data;
  const setActive = async (active) => {
    const got = await api.patch(path, { is_active: active });
    setChanged(got);
    if (got.success) reload();
  };
  return html`<div class="stack">
    <section class="card">
      <${AdminNav} current="accounts" />
      <p class="crumbs"><a href="#/admin/accounts">Accounts</a> /</p>
      <${Heading}>${account.name}<//>
      <dl class="facts">
        <dt>Email</dt><dd>${account.email}</dd>
        <dt>Status</dt><dd><${ActiveBadge} active=${account.is_active} /></dd>
        <dt>Owner</dt><dd>${account.owner_user_id ? html`<a href=${href(`/admin/users/${account.owner_user_id}`)}>${account.owner_user_id}</a>` : "none (its sites may write no device)"}</dd>
        <dt>Created</dt><dd>${formatTime(account.created_at)}</dd>
      </dl>
      <form class="inline-form" id="edit-account-form" onSubmit=${submit}
          key=${`${account.name}|${account.max_concurrent_batches}|${account.owner_user_id}`}>
        <${Field} label="Name" name="name" answer=${edited} defaultValue=${account.name} required maxlength="100" />
        <${Field} label="Open batches allowed" name="max_concurrent_batches" answer=${edited} type="number" min="1" max="1000" defaultValue=${account.max_concurrent_batches} />
        <${Field} label="Owner (user id)" name="owner_user_id" answer=${edited} defaultValue=${account.owner_user_id} placeholder="none (its sites write no device)" />
        <div class="buttons"><button type="submit" disabled=${busy}>Save</button></div>
        <${Message} answer=${edited} inline=${["name", "max_concurrent_batches", "owner_user_id"]} />
      </form>
      <div class="buttons">
        ${account.is_active
          ? html`<${Confirm} label="Deactivate the account…" yes="Yes, deactivate it" question="Its sites get no new tokens." onConfirm=${() => setActive(false)} />`
          : html`<${Confirm} label="Activate the account…" yes="Yes, activate it" danger=${false} question="Its sites get tokens again." onConfirm=${() => setActive(true)} />`}
      </div>
      <${Message} answer=${changed} />
    </section>
    <${Sites} accountId=${account.id} />
  </div>`;
}

// The secret of a site just created or rotated: shown this once.
function Secret({ issued, onDone }) {
  if (!issued) return null;
  return html`<div class="secret" id="site-secret" role="status">
    <p>The client secret of <strong>${issued.site.domain}</strong>. Store it now: it is not shown again.</p>
    <div class="copy-row"><code>${issued.client_secret}</code>
      <${CopyButton} text=${issued.client_secret} label="Copy the secret" />
      <button type="button" class="secondary small" onClick=${onDone}>I have stored it</button></div>
  </div>`;
}

function Sites({ accountId }) {
  const [page, setPage] = useState(1);
  const path = `/v1/admin/accounts/${accountId}/sites`;
  const [answer, reload] = useLoad(() => api.get(path, { page, limit: PAGE_SIZE }), [path, page]);
  const [issued, setIssued] = useState(null);
  // Where focus goes once the secret is put away, rather than the page's top.
  const heading = useRef(null);
  const [changed, setChanged] = useState(null);
  const { answer: created, busy, submit } = useSubmit(async (values, form) => {
    const got = await api.post(path, values);
    if (got.success) {
      form.reset();
      setIssued(got.data);
      reload();
    }
    return got;
  });
  const act = async (call) => {
    const got = await call();
    setChanged(got);
    if (got.success) reload();
    return got;
  };
  const rotate = (site) => act(async () => {
    const got = await api.post(`/v1/admin/sites/${site.id}/rotate-secret`, {});
    if (got.success) setIssued(got.data);
    return got;
  });
  const setActive = (site, active) => act(() => api.patch(`/v1/admin/sites/${site.id}`, { is_active: active }));
  const sites = answer && answer.success ? answer.data.sites : [];
  return html`<section class="card">
    <h3 tabindex="-1" ref=${heading}>Sites</h3>
    <p class="muted">Each site exchanges its client secret for short-lived upload tokens (<code>POST /v1/sites/token</code>).</p>
    <${Secret} issued=${issued} onDone=${() => { setIssued(null); heading.current.focus(); }} />
    <form class="inline-form" id="create-site-form" onSubmit=${submit}>
      <${Field} label="Domain" name="domain" answer=${created} required placeholder="plant-7.example.com" />
      <${Field} label="Site name" name="name" answer=${created} required maxlength="100" />
      <div class="buttons"><button type="submit" disabled=${busy}>Add a site</button></div>
      <${Message} answer=${created && !created.success ? created : null} inline=${["domain", "name"]} />
    </form>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    <div class="table-scroll"><table id="site-table">
      <thead><tr><th scope="col">Domain</th><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
      <tbody>${sites.map((site) => html`<tr key=${site.id}>
        <td>${site.domain}</td><td>${site.name}</td>
        <td><${ActiveBadge} active=${site.is_active} /></td>
        <td>${formatTime(site.created_at)}</td>
        <td class="actions">
          <${Confirm} label="Rotate the secret…" name=${`Rotate the secret of ${site.domain}…`} yes="Yes, rotate" question="The old secret stops working at once."
            onConfirm=${() => rotate(site)} />
          ${site.is_active
            ? html`<${Confirm} label="Deactivate…" name=${`Deactivate ${site.domain}…`} yes="Yes, deactivate" question="It gets no new tokens." onConfirm=${() => setActive(site, false)} />`
            : html`<${Confirm} label="Activate…" name=${`Activate ${site.domain}…`} yes="Yes, activate" danger=${false} question="It gets tokens again." onConfirm=${() => setActive(site, true)} />`}
        </td>
      </tr>`)}</tbody>
    </table></div>
    ${answer && answer.success && sites.length === 0 && html`<p class="muted">No site yet.</p>`}
    <${Message} answer=${changed && !changed.success ? changed : null} />
    <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${setPage} />
  </section>`;
}
