// Anomalies: the reviewed list with filters kept in the URL, exports, and a
// live list of new anomalies from the gateway's watch stream.
import { api, download, query } from "../api.js";
import { html, useEffect, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { watch } from "../sse.js";
import { formatNumber, formatTime, Heading, Message, Pager, useLoad } from "../ui.js";

const TYPES = ["spike", "dip", "out_of_range", "flatline", "rate_of_change", "gap"];
const STATUSES = ["pending", "confirmed", "dismissed"];
// The live list keeps the newest few; the full history is the table below it.
const LIVE_KEEP = 20;

export function Anomalies({ params }) {
  const filters = {
    page: Number(params.page || 1),
    status: params.status || "",
    anomaly_type: params.anomaly_type || "",
    device_id: params.device_id || "",
    stream_id: params.stream_id || "",
  };
  const [answer, reload] = useLoad(() => api.get("/v1/anomalies", { ...filters, limit: 20 }),
    [filters.page, filters.status, filters.anomaly_type, filters.device_id, filters.stream_id]);
  const change = (update) => navigate("/anomalies", { ...filters, page: 1, ...update });
  const items = answer && answer.success ? answer.data.anomalies : [];
  const [exported, setExported] = useState(null);
  const exportAs = async (format) => {
    const path = `/v1/anomalies/export${query({ format, status: filters.status, stream_id: filters.stream_id })}`;
    const ok = await download(path, `anomalies.${format}`);
    setExported(ok ? null : { success: false, message: "The export failed" });
  };
  return html`<div class="stack">
    <${Live} onNew=${reload} />
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
      <div class="table-scroll"><table id="anomaly-table">
        <thead><tr><th scope="col">Detected</th><th scope="col">Type</th><th scope="col">Value</th><th scope="col">Confidence</th><th scope="col">Status</th><th scope="col">Chart</th></tr></thead>
        <tbody>${items.map((item) => html`<tr key=${item.anomaly_id}>
          <td><a href=${href(`/anomalies/${item.anomaly_id}`)}>${formatTime(item.detected_at)}</a></td>
          <td>${item.anomaly_type.replaceAll("_", " ")}</td>
          <td>${formatNumber(item.raw_value)}</td>
          <td>${formatNumber(item.confidence_score, 2)}</td>
          <td><span class=${`badge review-${item.status}`}>${item.status}</span></td>
          <td><a href=${chartLink(item)}>chart</a></td>
        </tr>`)}</tbody>
      </table></div>
      ${answer && answer.success && items.length === 0 && html`<p class="muted">No anomaly matches.</p>`}
      <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${(page) => navigate("/anomalies", { ...filters, page })} />
    </section>
  </div>`;
}

// The chart of the anomaly's stream, an hour either side of it.
export function chartLink(item) {
  const at = Date.parse(item.detected_at);
  return href(`/streams/${item.stream_id}`, { from: at - 3_600_000, to: at + 3_600_000 });
}

function Live({ onNew }) {
  const [state, setState] = useState("connecting");
  const [items, setItems] = useState([]);
  useEffect(() => {
    const stream = watch("/v1/anomalies:watch", {
      onState: setState,
      onEvent: (type, payload) => {
        if (type !== "message") return;
        setItems((old) => [payload, ...old].slice(0, LIVE_KEEP));
        onNew();
      },
    });
    return () => stream.stop();
  }, []);
  return html`<section class="card wide" aria-live="polite">
    <h3>Live <span class=${`badge live-${state}`}>${state}</span></h3>
    ${items.length === 0 ? html`<p class="muted">New anomalies appear here as analytics finds them.</p>` : html`<ul class="anomaly-links" id="live-anomalies">
      ${items.map((item) => html`<li key=${item.anomaly_id}><a href=${href(`/anomalies/${item.anomaly_id}`)}>
        ${item.anomaly_type} · ${formatNumber(item.raw_value)} at ${formatTime(item.detected_at)}</a></li>`)}
    </ul>`}
  </section>`;
}
