// One anomaly, and its review: confirm or dismiss (or reopen) with a note.
import { api } from "../api.js";
import { html, useState } from "../lib.js";
import { href } from "../router.js";
import { formatNumber, formatTime, formValues, Heading, Message, useBusy, useLoad } from "../ui.js";

// The chart of the anomaly's stream, an hour either side of it.
export function chartLink(item) {
  const at = Date.parse(item.detected_at);
  return href(`/streams/${item.stream_id}`, { from: at - 3_600_000, to: at + 3_600_000 });
}

// Reviews one anomaly: "confirmed", "dismissed" or "pending" (reopened), with an optional note.
export function reviewAnomaly(anomalyId, status, note) {
  return api.patch(`/v1/anomalies/${encodeURIComponent(anomalyId)}`, { status, note: note || "" });
}

export function Anomaly({ anomalyId }) {
  const path = `/v1/anomalies/${encodeURIComponent(anomalyId)}`;
  const [answer, reload] = useLoad(() => api.get(path), [path]);
  const [review, setReview] = useState(null);
  const [busy, run] = useBusy();
  if (!answer) return html`<p class="muted">Loading…</p>`;
  if (!answer.success) return html`<section class="card"><${Heading}>Anomaly<//><${Message} answer=${answer} /></section>`;
  const item = answer.data;
  const submit = (status) => (event) => {
    const form = event.currentTarget.form;
    run(async () => {
      const got = await reviewAnomaly(anomalyId, status, formValues(form).note);
      setReview(got);
      if (got.success) reload();
    });
  };
  return html`<section class="card">
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/anomalies">Anomalies</a> ›</nav>
    <${Heading}>${item.anomaly_type.replaceAll("_", " ")} at ${formatTime(item.detected_at)}<//>
    <dl class="facts">
      <dt>Status</dt><dd><span class=${`badge review-${item.status}`} id="anomaly-status">${item.status}</span></dd>
      <dt>Value</dt><dd>${formatNumber(item.raw_value)}</dd>
      <dt>Expected</dt><dd>${formatNumber(item.expected_value)}</dd>
      <dt>Confidence</dt><dd>${formatNumber(item.confidence_score, 2)}</dd>
      <dt>Found</dt><dd>${formatTime(item.found_at)}</dd>
      <dt>Device</dt><dd><a href=${href(`/devices/${item.device_id}`)}>${item.device_id}</a></dd>
      <dt>Stream</dt><dd><a href=${chartLink(item)}>chart around it</a></dd>
      ${item.reviewed_at && html`<dt>Reviewed</dt><dd>${formatTime(item.reviewed_at)}</dd>`}
      ${item.review_note && html`<dt>Note</dt><dd>${item.review_note}</dd>`}
    </dl>
    <form id="review-form" onSubmit=${(event) => event.preventDefault()}>
      <label>Note <textarea name="note" maxlength="1000" rows="3"></textarea></label>
      <div class="buttons">
        <button type="button" id="confirm-anomaly" disabled=${busy} onClick=${submit("confirmed")}>Confirm</button>
        <button type="button" id="dismiss-anomaly" class="secondary" disabled=${busy} onClick=${submit("dismissed")}>Dismiss</button>
        ${item.status !== "pending" && html`<button type="button" class="secondary" disabled=${busy} onClick=${submit("pending")}>Reopen</button>`}
      </div>
    </form>
    <${Message} answer=${review} />
  </section>`;
}
