// One device: its details and streams, editing, its credential (issued,
// rotated and revoked; the token is shown once) and decommissioning.
import { api } from "../api.js";
import { html, useLayoutEffect, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import {
  Confirm, CopyButton, Field, formatNumber, formatTime, Heading, Message, useBusy, useLoad, useSubmit,
} from "../ui.js";
import { DEVICE_STATUSES, LOCATION_FIELDS, LocationFields, locationOf, useInvalidFocus } from "./devices.js";

export function Device({ deviceId }) {
  const path = `/v1/devices/${encodeURIComponent(deviceId)}`;
  const [answer, reload] = useLoad(() => api.get(path), [path]);
  if (!answer) return html`<p class="muted">Loading…</p>`;
  if (!answer.success) return html`<section class="card"><${Heading}>Device<//><${Message} answer=${answer} /><a href="#/devices">All devices</a></section>`;
  const device = answer.data;
  return html`<div class="stack">
    <section class="card">
      <nav class="crumbs" aria-label="Breadcrumb"><a href="#/devices">Devices</a> ›</nav>
      <${Heading}>${device.name}<//>
      <dl class="facts">
        <dt>Type</dt><dd>${device.type}</dd>
        <dt>Status</dt><dd><span class=${`badge status-${device.status}`}>${device.status}</span></dd>
        <dt>Location</dt><dd>${device.location ? `${formatNumber(device.location.latitude, 5)}, ${formatNumber(device.location.longitude, 5)}` : "—"}</dd>
        <dt>Readings</dt><dd>${device.readings_total}</dd>
        <dt>Last seen</dt><dd>${formatTime(device.last_seen_at)}</dd>
        <dt>Registered</dt><dd>${formatTime(device.registered_at)}</dd>
        <dt>Device id</dt><dd><code>${device.device_id}</code></dd>
      </dl>
      <a href=${href("/anomalies", { device_id: device.device_id })}>Anomalies of this device</a>
    </section>
    <${Streams} deviceId=${deviceId} />
    <${EditDevice} device=${device} onChanged=${reload} />
    <${Credential} device=${device} onChanged=${reload} />
    <${Decommission} device=${device} />
  </div>`;
}

function Streams({ deviceId }) {
  const [answer] = useLoad(() => api.get(`/v1/devices/${encodeURIComponent(deviceId)}/streams`), [deviceId]);
  const streams = answer && answer.success ? answer.data.streams : [];
  return html`<section class="card">
    <h3>Streams</h3>
    ${streams.length > 1 && html`<p><a href=${href(`/devices/${deviceId}/chart`)}>All streams on one time axis</a></p>`}
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    ${answer && answer.success && streams.length === 0 && html`<p class="muted">No readings yet: streams appear with a device's first readings.</p>`}
    <p><a href=${href("/imports", { device_id: deviceId })}>Import readings from files…</a></p>
    ${streams.length > 0 && html`<div class="table-scroll"><table id="stream-table">
      <thead><tr><th scope="col">Metric</th><th scope="col">Readings</th><th scope="col">Latest</th><th scope="col">Last reading</th></tr></thead>
      <tbody>${streams.map((stream) => html`<tr key=${stream.stream_id}>
        <td><a href=${href(`/streams/${stream.stream_id}`)}>${stream.metric_name}</a></td>
        <td>${stream.readings_count}</td>
        <td>${formatNumber(stream.latest_value)}</td>
        <td>${formatTime(stream.last_seen_at)}</td>
      </tr>`)}</tbody>
    </table></div>`}
  </section>`;
}

// Its outcome stands under the Save button, and its field errors beside their
// fields (the first one focused), not in the top card, off screen on a phone.
function EditDevice({ device, onChanged }) {
  const { answer, busy, submit } = useSubmit(async (values) => {
    const { location, refused } = locationOf(values);
    if (refused) return refused;
    const body = { name: values.name, status: values.status };
    if (location) body.location = location;
    else if (device.location) body.clear_location = true;
    const got = await api.patch(`/v1/devices/${device.device_id}`, body);
    if (got.success) onChanged();
    return got;
  });
  const form = useInvalidFocus(answer);
  // Default values, not values: a re-render (a credential issued beside it)
  // must not undo what is being typed; a saved device re-creates the form.
  return html`<section class="card">
    <h3>Edit</h3>
    <form class="inline-form" id="edit-device-form" ref=${form} onSubmit=${submit} key=${device.updated_at}>
      <${Field} label="Name" name="name" answer=${answer} required maxlength="100" defaultValue=${device.name} />
      <${Field} label="Status" name="status" answer=${answer}>
        ${DEVICE_STATUSES.map((status) => html`<option value=${status} defaultSelected=${status === device.status}>${status}</option>`)}
      <//>
      <${LocationFields} answer=${answer} location=${device.location || {}} />
      <div class="buttons"><button type="submit" disabled=${busy}>Save</button></div>
      <${Message} answer=${answer} inline=${["name", "status", ...LOCATION_FIELDS]} />
    </form>
  </section>`;
}

// Rotating and revoking ask first: the token in use stops working at once.
// A new token's copy button starts again at "Copy" (keyed by the token): the
// clipboard holds the old one until it is pressed.
function Credential({ device, onChanged }) {
  const [issued, setIssued] = useState(null);
  const [answer, setAnswer] = useState(null);
  const [busy, run] = useBusy();
  // The button pressed may be gone once the credential changed (issuing replaces
  // it, revoking removes it): focus then goes to the new token, or the section.
  const secret = useRef(null);
  const heading = useRef(null);
  const first = useRef(true);
  useLayoutEffect(() => {
    if (first.current) { first.current = false; return; }
    if (document.activeElement && document.activeElement !== document.body) return;
    const target = issued ? secret.current : heading.current;
    if (target) target.focus();
  }, [device.has_credential, issued]);
  const issue = () => run(async () => {
    const got = await api.post(`/v1/devices/${device.device_id}/credentials`, {});
    setAnswer(got);
    setIssued(got.success ? got.data : null);
    if (got.success) onChanged();
  });
  const revoke = () => run(async () => {
    const got = await api.del(`/v1/devices/${device.device_id}/credentials`);
    setAnswer(got);
    setIssued(null);
    if (got.success) onChanged();
  });
  return html`<section class="card">
    <h3 tabindex="-1" ref=${heading}>Credential</h3>
    <p class="muted">${device.has_credential
      ? "The device has a working credential. Rotating issues a new token and stops the old one."
      : "The device has no working credential; issue one to let it stream readings."}</p>
    <div class="buttons">
      ${device.has_credential
        ? html`<${Confirm} id="issue-credential" label="Rotate the credential…" yes="Yes, rotate it" danger=${false} disabled=${busy}
            question="The token in use stops working at once." onConfirm=${issue} />
          <${Confirm} id="revoke-credential" label="Revoke…" yes="Yes, revoke it" disabled=${busy}
            question="The token stops working at once, and the device cannot send until a new one is issued." onConfirm=${revoke} />`
        : html`<button type="button" id="issue-credential" disabled=${busy} onClick=${issue}>Issue a credential</button>`}
    </div>
    ${issued && html`<div class="secret" id="issued-token" tabindex="-1" ref=${secret}>
      <p><strong>Store this token now: it is not shown again.</strong> It expires ${formatTime(issued.expires_at)}.</p>
      <div class="copy-row"><code>${issued.token}</code><${CopyButton} key=${issued.token} text=${issued.token} label="Copy the token" /></div>
    </div>`}
    <${Message} answer=${answer} />
  </section>`;
}

function Decommission({ device }) {
  const [asking, setAsking] = useState(false);
  // The button pressed is replaced by the question: focus goes to its safe answer,
  // not back to the top of the page.
  const keep = useRef(null);
  useLayoutEffect(() => { if (asking && keep.current) keep.current.focus(); }, [asking]);
  const [answer, setAnswer] = useState(null);
  const [busy, run] = useBusy();
  const confirm = () => run(async () => {
    const got = await api.del(`/v1/devices/${device.device_id}`);
    setAnswer(got);
    if (got.success) navigate("/devices");
  });
  return html`<section class="card danger-zone">
    <h3>Decommission</h3>
    <p class="muted">The device leaves the registry for good, its credential stops working and its data is purged.</p>
    ${asking
      ? html`<div class="buttons" role="group" aria-label="Confirm decommissioning">
          <button type="button" class="danger" id="confirm-decommission" disabled=${busy} onClick=${confirm}>Yes, decommission “${device.name}”</button>
          <button type="button" class="secondary" ref=${keep} onClick=${() => setAsking(false)}>Keep it</button>
        </div>`
      : html`<div class="buttons"><button type="button" class="danger" id="decommission" onClick=${() => setAsking(true)}>Decommission…</button></div>`}
    <${Message} answer=${answer} />
  </section>`;
}
