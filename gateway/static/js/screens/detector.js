// A stream's anomaly detector: what it has learnt (level, spread, readings),
// its threshold as reviews moved it, and the settings a user may change:
// the physical bounds and the base threshold.
import { api } from "../api.js";
import { html } from "../lib.js";
import { formatNumber, Message, useLoad, useSubmit } from "../ui.js";

// Proto JSON writes an infinite bound as the string "Infinity" / "-Infinity".
const bound = (value) => (typeof value === "number" ? formatNumber(value) : "none");
const editable = (value) => (typeof value === "number" ? value : "");

export function Detector({ streamId }) {
  const path = `/v1/streams/${encodeURIComponent(streamId)}/detector`;
  const [answer, reload] = useLoad(() => api.get(path), [path]);
  const { answer: saved, busy, submit } = useSubmit(async (values) => {
    const body = { threshold: Number(values.threshold) };
    if (values.min_value !== "") body.min_value = Number(values.min_value);
    if (values.max_value !== "") body.max_value = Number(values.max_value);
    const got = await api.patch(path, body);
    if (got.success) reload();
    return got;
  });
  if (!answer) return null;
  if (!answer.success) return html`<section class="card wide"><h3>Detector</h3><${Message} answer=${answer} /></section>`;
  const detector = answer.data;
  return html`<section class="card wide" id="detector">
    <h3>Detector</h3>
    <dl class="facts">
      <dt>Threshold</dt><dd>${formatNumber(detector.threshold, 3)} now (base ${formatNumber(detector.base_threshold, 3)};${" "}${detector.dismissed} dismissed, ${detector.confirmed} confirmed)</dd>
      <dt>Bounds</dt><dd>${bound(detector.min_value)} to ${bound(detector.max_value)} (${detector.device_type})</dd>
      <dt>Learnt level</dt><dd>${formatNumber(detector.level)} ± ${formatNumber(detector.scale)}</dd>
      <dt>Readings</dt><dd>${detector.readings} analysed, ${detector.late_readings} late</dd>
    </dl>
    <form class="inline-form" id="detector-form" onSubmit=${submit} key=${`${detector.base_threshold}:${detector.min_value}:${detector.max_value}`}>
      <label>Lowest possible value <input name="min_value" type="number" step="any" defaultValue=${editable(detector.min_value)} /></label>
      <label>Highest possible value <input name="max_value" type="number" step="any" defaultValue=${editable(detector.max_value)} /></label>
      <label>Base threshold <input name="threshold" type="number" step="0.01" min="0.05" max="0.99" required defaultValue=${detector.base_threshold} /></label>
      <div class="buttons"><button type="submit" disabled=${busy}>Save the detector</button></div>
      <${Message} answer=${saved} />
    </form>
  </section>`;
}
