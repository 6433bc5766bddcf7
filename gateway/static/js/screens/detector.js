// A stream's anomaly detector: what it has learnt (level, spread, readings),
// its threshold as reviews moved it, and the settings a user may change:
// the physical bounds (an emptied one is no bound) and the base threshold.
import { api } from "../api.js";
import { html } from "../lib.js";
import { Field, formatNumber, Message, useLoad, useSubmit } from "../ui.js";

// Proto JSON writes an infinite bound as the string "Infinity" / "-Infinity",
// and reads it so: an empty field sends it, which clears the bound.
const bound = (value) => (typeof value === "number" ? formatNumber(value) : "none");
const editable = (value) => (typeof value === "number" ? value : "");
const sent = (text, none) => (text.trim() === "" ? none : Number(text));
const FIELDS = ["min_value", "max_value", "threshold"];

export function Detector({ streamId }) {
  const path = `/v1/streams/${encodeURIComponent(streamId)}/detector`;
  const [answer, reload] = useLoad(() => api.get(path), [path]);
  const { answer: saved, busy, submit } = useSubmit(async (values) => {
    const got = await api.patch(path, {
      threshold: Number(values.threshold),
      min_value: sent(values.min_value, "-Infinity"),
      max_value: sent(values.max_value, "Infinity"),
    });
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
      <${Field} label="Lowest possible value" name="min_value" answer=${saved} type="number" step="any" placeholder="none" defaultValue=${editable(detector.min_value)} />
      <${Field} label="Highest possible value" name="max_value" answer=${saved} type="number" step="any" placeholder="none" defaultValue=${editable(detector.max_value)} />
      <${Field} label="Base threshold" name="threshold" answer=${saved} type="number" step="0.01" min="0.05" max="0.99" required defaultValue=${detector.base_threshold} />
      <div class="buttons"><button type="submit" disabled=${busy}>Save the detector</button></div>
      <${Message} answer=${saved} inline=${FIELDS} />
    </form>
  </section>`;
}
