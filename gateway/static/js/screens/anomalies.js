// Anomalies: the reviewed list with filters kept in the URL, exports, and a
// live list of new anomalies from the gateway's watch stream.
import { api, download, query } from "../api.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { useLiveList } from "../sse.js";
import { formatNumber, formatTime, Heading, LiveSummary, Message, pageOf, Pager, useBusy, useLoad } from "../ui.js";
import { chartLink, reviewAnomaly } from "./anomaly.js";

const TYPES = ["spike", "dip", "out_of_range", "flatline", "rate_of_change", "gap"];
const STATUSES = ["pending", "confirmed", "dismissed"];
// The live list keeps the newest few; the full history is the table below it.
const LIVE_KEEP = 20;
// A burst of live anomalies asks for the table again at most this often.
const RELOAD_EVERY_MS = 2_000;

// Whether a new anomaly belongs in the table under these filters (it is pending).
function matches(anomaly, filters) {
  return (!filters.status || filters.status === "pending")
    && (!filters.anomaly_type || anomaly.anomaly_type === filters.anomaly_type)
    && (!filters.device_id || anomaly.device_id === filters.device_id)
    && (!filters.stream_id || anomaly.stream_id === filters.stream_id);
}

// Device names by id, asked once per device (GET /v1/devices/{id}) and shared
// by the table and the live list; an id that cannot be read (a decommissioned
// device) shows shortened.
const deviceNames = new Map();
const askedNames = new Map();

function nameOf(id) {
  if (!askedNames.has(id)) {
    askedNames.set(id, api.get(`/v1/devices/${encodeURIComponent(id)}`).then((got) => {
      if (got.success) deviceNames.set(id, got.data.name);
      else if (got.http_status_code !== 404) askedNames.delete(id); // asked again next time
    }));
  }
  return askedNames.get(id);
}

function useDeviceNames(ids) {
  const [, setKnown] = useState(0);
  const wanted = [...new Set(ids.filter(Boolean))];
  const key = wanted.join(",");
  useEffect(() => {
    // Drawn again once every name is in, even when they all were by now: one may have
    // arrived between this render and this effect, under an earlier effect since undone.
    let current = true;
    Promise.all(wanted.map(nameOf)).then(() => { if (current) setKnown((n) => n + 1); });
    return () => { current = false; };
  }, [key]);
  return (id) => deviceNames.get(id) || (id ? `${id.slice(0, 8)}…` : "—");
}

// `reload` at most once per RELOAD_EVERY_MS, the last call of a burst never lost.
function useThrottled(reload) {
  const timer = useRef(0);
  const last = useRef(0);
  useEffect(() => () => clearTimeout(timer.current), []);
  return () => {
    if (timer.current) return;
    const wait = Math.max(0, last.current + RELOAD_EVERY_MS - Date.now());
    timer.current = setTimeout(() => { timer.current = 0; last.current = Date.now(); reload(); }, wait);
  };
}

export function Anomalies({ params }) {
  const filters = {
    page: pageOf(params.page),
    status: params.status || "",
    anomaly_type: params.anomaly_type || "",
    device_id: params.device_id || "",
    stream_id: params.stream_id || "",
  };
  const [answer, reload] = useLoad(() => api.get("/v1/anomalies", { ...filters, limit: 20 }),
    [filters.page, filters.status, filters.anomaly_type, filters.device_id, filters.stream_id]);
  const change = (update) => navigate("/anomalies", { ...filters, page: 1, ...update });
  const items = answer && answer.success ? answer.data.anomalies : [];
  const deviceName = useDeviceNames(items.map((item) => item.device_id));
  // Ids ticked for a bulk review: a reload (a live anomaly, a review) keeps those still
  // shown, so a new page or filter starts with none.
  const [selected, setSelected] = useState(new Set());
  useEffect(() => setSelected((old) => {
    const shown = new Set(items.map((item) => item.anomaly_id));
    const kept = [...old].filter((id) => shown.has(id));
    return kept.length === old.size ? old : new Set(kept);
  }), [answer]);
  const reloadSoon = useThrottled(reload);
  const onLive = (anomaly) => { if (matches(anomaly, filters)) reloadSoon(); };
  const toggle = (id) => setSelected((old) => {
    const next = new Set(old);
    if (next.has(id)) next.delete(id); else next.add(id);
    return next;
  });
  const allTicked = items.length > 0 && items.every((item) => selected.has(item.anomaly_id));
  const tickAll = () => setSelected(allTicked ? new Set() : new Set(items.map((item) => item.anomaly_id)));
  const [exported, setExported] = useState(null);
  const exportAs = async (format) => {
    const { page, ...selection } = filters;
    const path = `/v1/anomalies/export${query({ format, ...selection })}`;
    const ok = await download(path, `anomalies.${format}`);
    setExported(ok ? null : { success: false, message: "The export failed" });
  };
  return html`<div class="stack">
    <${Live} onNew=${onLive} />
    <section class="card wide">
      <${Heading}>Anomalies<//>
      <form class="filters" onSubmit=${(event) => event.preventDefault()}>
        <label>Status <select value=${filters.status} onChange=${(event) => change({ status: event.currentTarget.value })}>
          <option value="">any</option>${STATUSES.map((status) => html`<option value=${status}>${status}</option>`)}
        </select></label>
        <label>Type <select value=${filters.anomaly_type} onChange=${(event) => change({ anomaly_type: event.currentTarget.value })}>
          <option value="">any</option>${TYPES.map((type) => html`<option value=${type}>${type.replaceAll("_", " ")}</option>`)}
        </select></label>
        ${(filters.device_id || filters.stream_id) && html`<a class="button secondary small" href="#/anomalies">Clear the device/stream filter</a>`}
      </form>
      <div class="buttons">
        <button type="button" class="secondary small" onClick=${() => exportAs("csv")}>Export CSV</button>
        <button type="button" class="secondary small" onClick=${() => exportAs("json")}>Export JSON</button>
      </div>
      <${Message} answer=${exported} />
      ${answer && !answer.success && html`<${Message} answer=${answer} />`}
      <${BulkReview} ids=${[...selected]} onDone=${() => { setSelected(new Set()); reload(); }} />
      <div class="table-scroll"><table id="anomaly-table">
        <thead><tr><th scope="col"><input type="checkbox" aria-label="Select every anomaly on this page" checked=${allTicked} onChange=${tickAll} /></th><th scope="col">Detected</th><th scope="col">Device</th><th scope="col">Type</th><th scope="col">Value</th><th scope="col">Confidence</th><th scope="col">Status</th><th scope="col">Chart</th></tr></thead>
        <tbody>${items.map((item) => html`<tr key=${item.anomaly_id}>
          <td><input type="checkbox" aria-label=${`Select the ${item.anomaly_type} at ${formatTime(item.detected_at)}`}
            checked=${selected.has(item.anomaly_id)} onChange=${() => toggle(item.anomaly_id)} /></td>
          <td><a href=${href(`/anomalies/${item.anomaly_id}`)}>${formatTime(item.detected_at)}</a></td>
          <td><a href=${href(`/devices/${item.device_id}`)}>${deviceName(item.device_id)}</a></td>
          <td>${item.anomaly_type.replaceAll("_", " ")}</td>
          <td>${formatNumber(item.raw_value)}</td>
          <td>${formatNumber(item.confidence_score, 2)}</td>
          <td><span class=${`badge review-${item.status}`}>${item.status}</span></td>
          <td><a href=${chartLink(item)}>chart</a></td>
        </tr>`)}</tbody>
      </table></div>
      ${answer && answer.success && answer.data.pagination?.total === 0 && html`<p class="muted">No anomaly matches.</p>`}
      <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${(page) => navigate("/anomalies", { ...filters, page })} />
    </section>
  </div>`;
}

// Confirms or dismisses every ticked anomaly with one note, one call each
// (the API reviews one at a time), and says how many went through.
function BulkReview({ ids, onDone }) {
  const [note, setNote] = useState("");
  const [result, setResult] = useState(null);
  const [busy, run] = useBusy();
  const review = (status) => run(async () => {
    const answers = [];
    for (const id of ids) answers.push(await reviewAnomaly(id, status, note));
    const failed = answers.filter((got) => !got.success);
    setResult(failed.length
      ? { success: false, message: `${answers.length - failed.length} ${status}; ${failed.length} failed: ${failed[0].message}` }
      : { success: true, message: `${answers.length} ${status}` });
    setNote("");
    onDone();
  });
  return html`<div class="bulk" role="group" aria-label="Review the selected anomalies">
    <label class="inline">Note <input value=${note} maxlength="1000" onInput=${(event) => setNote(event.currentTarget.value)} /></label>
    <button type="button" class="small" disabled=${busy || !ids.length} onClick=${() => review("confirmed")}>Confirm selected (${ids.length})</button>
    <button type="button" class="secondary small" disabled=${busy || !ids.length} onClick=${() => review("dismissed")}>Dismiss selected</button>
    <${Message} answer=${result} />
  </div>`;
}

function Live({ onNew }) {
  const [state, items] = useLiveList("/v1/anomalies:watch", { keep: LIVE_KEEP, onNew });
  const deviceName = useDeviceNames(items.map((item) => item.device_id));
  return html`<section class="card wide">
    <h3>Live <span class=${`badge live-${state}`}>${state}</span></h3>
    <${LiveSummary} id="live-anomalies-said" items=${items} idOf=${(item) => item.anomaly_id} nouns=${["anomaly", "anomalies"]}
      describe=${(item) => `${item.anomaly_type} on ${deviceName(item.device_id)} at ${formatTime(item.detected_at)}`} />
    ${items.length === 0 ? html`<p class="muted">New anomalies appear here as analytics finds them.</p>` : html`<ul class="anomaly-links" id="live-anomalies">
      ${items.map((item) => html`<li key=${item.anomaly_id}><a href=${href(`/anomalies/${item.anomaly_id}`)}>
        ${item.anomaly_type} · ${deviceName(item.device_id)} · ${formatNumber(item.raw_value)} at ${formatTime(item.detected_at)}</a></li>`)}
    </ul>`}
  </section>`;
}
