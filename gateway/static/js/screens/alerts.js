// Alert rules: the live feed of alert messages, a new rule (its signing
// secret shown once), and the rules with their state, deliveries and actions.
import { api } from "../api.js";
import { html, useState } from "../lib.js";
import { navigate } from "../router.js";
import { useLiveList } from "../sse.js";
import {
  Confirm, CopyButton, errorProps, FieldError, formatTime, Heading, LiveSummary, Message, pageOf, Pager, useLoad, useSubmit,
} from "../ui.js";

const KINDS = [["anomaly", "Anomalies"], ["silence", "A silent device"], ["threshold", "A reading past a value"]];
const LIVE_KEEP = 20;
// Fields the form shows beside their input; any other error goes in the message.
const INLINE = ["spec.name", "spec.device_ids", "spec.min_confidence", "spec.silence_seconds", "spec.direction",
  "spec.value", "spec.email_to", "spec.webhook_url", "spec.period_seconds", "spec.quiet_start", "spec.quiet_end",
  "spec.time_zone"];

export function Alerts({ params }) {
  const page = pageOf(params.page);
  const [answer, reload] = useLoad(() => api.get("/v1/alert-rules", { page, limit: 20 }), [page]);
  const rules = answer && answer.success ? answer.data.rules : [];
  return html`<div class="stack">
    <${LiveAlerts} onNew=${reload} />
    <section class="card wide">
      <${Heading}>Alert rules<//>
      <${NewRule} onCreated=${reload} />
      ${answer && !answer.success && html`<${Message} answer=${answer} />`}
      <div class="table-scroll"><table id="rule-table">
        <thead><tr><th scope="col">Name</th><th scope="col">When</th><th scope="col">Channels</th><th scope="col">State</th>
          <th scope="col">Last sent</th><th scope="col">Actions</th></tr></thead>
        <tbody>${rules.map((rule) => html`<${RuleRow} key=${rule.rule_id} rule=${rule} onChange=${reload} />`)}</tbody>
      </table></div>
      ${answer && answer.success && rules.length === 0 && html`<p class="muted">No alert rule yet.</p>`}
      <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${(next) => navigate("/alerts", { page: next })} />
    </section>
  </div>`;
}

function describe(spec) {
  if (spec.kind === "silence") return `no reading for ${spec.silence_seconds} s`;
  if (spec.kind === "threshold") return `a reading ${spec.direction} ${spec.value}`;
  return `an anomaly at or above ${spec.min_confidence} confidence`;
}

function channels(spec) {
  return [spec.email_to && `email ${spec.email_to}`, spec.webhook_url && "webhook", spec.live && "live"]
    .filter(Boolean).join(", ");
}

function RuleRow({ rule, onChange }) {
  const [shown, setShown] = useState(false);
  const [result, setResult] = useState(null);
  const act = async (sending) => { const got = await sending; setResult(got.success ? null : got); onChange(); };
  const spec = rule.spec;
  const state = !rule.firing ? "quiet" : rule.acknowledged ? "acknowledged" : "firing";
  return html`<tr>
    <td>${spec.name}${spec.paused ? html` <span class="badge">paused</span>` : ""}</td>
    <td>${describe(spec)}${spec.period_seconds ? `; at most one message per ${spec.period_seconds} s` : ""}</td>
    <td>${channels(spec)}</td>
    <td><span class=${`badge alert-${state}`}>${state}</span>${rule.pending_events ? ` · ${rule.pending_events} waiting` : ""}
      ${rule.dead_deliveries ? html` · <span class="message-error">${rule.dead_deliveries} dead</span>` : ""}</td>
    <td>${formatTime(rule.last_sent_at)}</td>
    <td><div class="buttons">
      ${state === "firing" && html`<button type="button" class="small" onClick=${() => act(api.post(`/v1/alert-rules/${rule.rule_id}:acknowledge`, {}))}>Acknowledge</button>`}
      <button type="button" class="secondary small" onClick=${() => act(api.patch(`/v1/alert-rules/${rule.rule_id}`, { spec: { paused: !spec.paused }, fields: ["paused"] }))}>${spec.paused ? "Resume" : "Pause"}</button>
      <button type="button" class="secondary small" aria-expanded=${shown} onClick=${() => setShown(!shown)}>Deliveries</button>
      <${Confirm} label="Delete" name=${`Delete the rule ${spec.name}`} question="Delete this rule?" yes="Delete"
        onConfirm=${() => act(api.del(`/v1/alert-rules/${rule.rule_id}`))} />
    </div>
    <${Message} answer=${result} />
    ${shown && html`<${Deliveries} ruleId=${rule.rule_id} />`}</td>
  </tr>`;
}

function Deliveries({ ruleId }) {
  const [answer] = useLoad(() => api.get(`/v1/alert-rules/${ruleId}/deliveries`, { limit: 20 }), [ruleId]);
  if (!answer) return html`<p class="muted">Loading…</p>`;
  if (!answer.success) return html`<${Message} answer=${answer} />`;
  const items = answer.data.deliveries;
  if (!items.length) return html`<p class="muted">Nothing delivered yet (the live feed keeps no record).</p>`;
  return html`<ul class="deliveries">${items.map((item) => html`<li key=${item.delivery_id}>
    ${formatTime(item.created_at)} · ${item.channel} · ${item.status} · ${item.attempts} attempt${item.attempts === 1 ? "" : "s"}
    ${item.event_count > 1 ? ` · ${item.event_count} events` : ""}${item.last_error ? ` · ${item.last_error}` : ""}
  </li>`)}</ul>`;
}

function ids(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

// The body of a new rule from the form: numbers as numbers, lists from commas.
function specOf(values) {
  const spec = {
    name: values.name, kind: values.kind, device_ids: ids(values.device_ids || ""),
    email_to: values.email_to, webhook_url: values.webhook_url, live: values.live === "on",
    period_seconds: Number(values.period_seconds || 0), quiet_start: values.quiet_start, quiet_end: values.quiet_end,
    time_zone: values.time_zone,
  };
  if (values.kind === "anomaly") spec.min_confidence = Number(values.min_confidence || 0);
  if (values.kind === "silence") spec.silence_seconds = Number(values.silence_seconds || 0);
  if (values.kind === "threshold") Object.assign(spec, { direction: values.direction, value: Number(values.value || 0) });
  return spec;
}

function NewRule({ onCreated }) {
  const [open, setOpen] = useState(false);
  const [kind, setKind] = useState("anomaly");
  const [secret, setSecret] = useState("");
  const { answer, busy, submit } = useSubmit(async (values, form) => {
    const got = await api.post("/v1/alert-rules", { spec: specOf(values) });
    if (got.success) {
      form.reset();
      setKind("anomaly");
      setSecret(got.data.webhook_secret);
      setOpen(false);
      onCreated();
    }
    return got;
  });
  const field = (name, label, input) => html`<label>${label} ${input}<${FieldError} answer=${answer} field=${`spec.${name}`} /></label>`;
  const props = (name) => ({ name, ...errorProps(answer, `spec.${name}`) });
  const kept = secret && html`<div class="message" role="status" id="rule-secret">
    <p class="message-ok">Rule created. Its webhook signing secret, shown this once: <code>${secret}</code>
      <${CopyButton} text=${secret} /></p>
    <p class="muted">Check <code>X-Iot-Signature</code> = sha256 HMAC of <code>timestamp.body</code> with it (see the README).</p>
    <button type="button" class="secondary small" onClick=${() => setSecret("")}>I have kept it</button>
  </div>`;
  if (!open) {
    return html`<div>${kept}<div class="buttons"><button type="button" id="new-rule" onClick=${() => setOpen(true)}>New rule…</button></div></div>`;
  }
  return html`<form class="inline-form" id="rule-form" onSubmit=${submit}>
    ${field("name", "Name", html`<input ...${props("name")} required maxlength="100" />`)}
    <label>When <select name="kind" value=${kind} onChange=${(event) => setKind(event.currentTarget.value)}>
      ${KINDS.map(([value, label]) => html`<option value=${value}>${label}</option>`)}</select></label>
    ${field("device_ids", "Device ids (comma-separated, empty: all)", html`<input ...${props("device_ids")} />`)}
    ${kind === "anomaly" && field("min_confidence", "Least confidence", html`<input ...${props("min_confidence")} type="number" step="0.01" min="0" max="1" value="0.5" />`)}
    ${kind === "silence" && field("silence_seconds", "Silent for (s)", html`<input ...${props("silence_seconds")} type="number" min="1" value="300" />`)}
    ${kind === "threshold" && html`<label>Direction <select name="direction"><option value="above">above</option><option value="below">below</option></select></label>`}
    ${kind === "threshold" && field("value", "Value", html`<input ...${props("value")} type="number" step="any" required />`)}
    ${field("email_to", "Email to", html`<input ...${props("email_to")} type="email" />`)}
    ${field("webhook_url", "Webhook URL", html`<input ...${props("webhook_url")} />`)}
    <label class="inline"><input name="live" type="checkbox" checked /> Live feed</label>
    ${field("period_seconds", "At most one message per (s)", html`<input ...${props("period_seconds")} type="number" min="0" max="86400" value="0" />`)}
    ${field("quiet_start", "Quiet from", html`<input ...${props("quiet_start")} type="time" />`)}
    ${field("quiet_end", "Quiet until", html`<input ...${props("quiet_end")} type="time" />`)}
    ${field("time_zone", "Time zone (empty: your profile's)", html`<input ...${props("time_zone")} placeholder="Europe/Paris" />`)}
    <div class="buttons">
      <button type="submit" disabled=${busy}>Create the rule</button>
      <button type="button" class="secondary" onClick=${() => setOpen(false)}>Cancel</button>
    </div>
    <${Message} answer=${answer} inline=${INLINE} />
  </form>`;
}

function LiveAlerts({ onNew }) {
  const [state, items] = useLiveList("/v1/alerts:watch", { keep: LIVE_KEEP, onNew });
  return html`<section class="card wide">
    <h3>Live alerts <span class=${`badge live-${state}`}>${state}</span></h3>
    <${LiveSummary} id="live-alerts-said" items=${items} idOf=${(item) => item.alert_id} nouns=${["alert", "alerts"]}
      describe=${(item) => `${item.rule_name}: ${item.summary}`} />
    ${items.length === 0 ? html`<p class="muted">Messages of rules with the live feed appear here as they are sent.</p>` : html`<ul id="live-alerts">
      ${items.map((item) => html`<li key=${item.alert_id}><strong>${item.rule_name}</strong>: ${item.summary}
        ${item.event_count > 1 ? ` (${item.event_count} events)` : ""} · ${formatTime(item.last_at)}</li>`)}
    </ul>`}
  </section>`;
}
