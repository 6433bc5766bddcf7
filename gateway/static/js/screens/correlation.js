// Correlation of two streams: pick them, a window and an algorithm, and see
// the result (coefficient, p-value, interval, pairs, the best lag) with a
// scatter of the two streams over the window on the result's grid; the past
// results below, each a link. `#/correlations?a=<stream>&b=<stream>` picks the
// streams; `#/correlations/<id>` is one result.
import { api } from "../api.js";
import { uPlotClass } from "../chart.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import {
  errorProps, FieldError, formatNumber, formatTime, Heading, Message, pageOf, Pager, useLoad, useSearch, useSubmit,
} from "../ui.js";

const ALGORITHMS = [["pearson", "Pearson (linear)"], ["spearman", "Spearman (ranks)"], ["cross_correlation", "Cross-correlation (best lag)"]];
const HOUR = 3_600_000;
const WINDOWS = [["1h", "Last hour", HOUR], ["24h", "Last 24 hours", 24 * HOUR], ["7d", "Last 7 days", 7 * 24 * HOUR], ["30d", "Last 30 days", 30 * 24 * HOUR], ["custom", "Dates of my choice", 0]];
// Devices whose streams a picker offers at once (by name); its search finds the others.
const DEVICE_LIMIT = 100;
// Readings asked of each stream for the scatter (downsampled beyond that).
const SCATTER_POINTS = 4_000;

// The streams of the caller's first devices by name whose name contains `search`, as
// [stream id, "device · metric"], and whether more devices matched; `streams` is null
// until known, and when `search` is null (not asked).
function useStreams(search = "") {
  const [found, setFound] = useState({ streams: null, more: false });
  useEffect(() => {
    let current = true;
    setFound({ streams: null, more: false });
    if (search === null) return undefined;
    (async () => {
      const devices = await api.get("/v1/devices", { limit: DEVICE_LIMIT, sort: "name", search });
      if (!devices.success) { if (current) setFound({ streams: [], more: false }); return; }
      const lists = await Promise.all(devices.data.devices.map(async (device) => {
        const got = await api.get(`/v1/devices/${device.device_id}/streams`, { limit: 100 });
        return got.success ? got.data.streams.map((stream) => [stream.stream_id, `${device.name} · ${stream.metric_name}`]) : [];
      }));
      const more = (devices.data.pagination?.total ?? 0) > devices.data.devices.length;
      if (current) setFound({ streams: lists.flat(), more });
    })();
    return () => { current = false; };
  }, [search]);
  return found;
}

// One stream's select, with a search of device names above it: the streams of the devices
// found, and always the stream chosen (from a deep link, or before the search changed).
// `streams`: the page's list without a search, shared by both pickers.
function StreamPicker({ name, label, find, streams, initial, fallback, answer }) {
  const [query, setQuery] = useState("");
  const [search, setSearch] = useSearch(query, setQuery);
  const searched = useStreams(query ? query : null).streams;
  const found = query ? searched : streams;
  const [chosen, setChosen] = useState(initial ? [initial, initial] : null);
  useEffect(() => {
    if (!initial) return undefined;
    let current = true;
    setChosen([initial, initial]);
    streamName(initial).then((text) => {
      if (current) setChosen((now) => (now && now[0] === initial ? [initial, text] : now));
    });
    return () => { current = false; };
  }, [initial]);
  const listed = found || [];
  const options = chosen && !listed.some(([id]) => id === chosen[0]) ? [chosen, ...listed] : listed;
  const value = chosen ? chosen[0] : (options[Math.min(fallback, options.length - 1)] || [""])[0];
  const pick = (event) => {
    const id = event.currentTarget.value;
    setChosen(options.find(([known]) => known === id) || null);
  };
  return html`<div class="stream-picker">
    <label>${find} <input type="search" value=${search} onInput=${(event) => setSearch(event.currentTarget.value)} /></label>
    <label>${label} <select name=${name} required value=${value} onChange=${pick} ...${errorProps(answer, name)}>
      ${options.map(([id, text]) => html`<option value=${id}>${text}</option>`)}
    </select><${FieldError} answer=${answer} field=${name} /></label>
    ${found && !listed.length && query && html`<p class="muted">No streams on devices whose name contains “${query}”.</p>`}
  </div>`;
}

// datetime-local wants local time without a zone.
function localInput(ms) {
  const date = new Date(ms - new Date(ms).getTimezoneOffset() * 60_000);
  return date.toISOString().slice(0, 16);
}

export function Correlations({ params }) {
  const { streams, more } = useStreams();
  const page = pageOf(params.page);
  const [past, reload] = useLoad(() => api.get("/v1/correlations", { page, limit: 10 }), [page]);
  const [windowKey, setWindowKey] = useState(params.window || "24h");
  const [algorithm, setAlgorithm] = useState(params.algorithm || "pearson");
  const { answer, busy, submit } = useSubmit(async (values) => {
    const body = { stream_a: values.stream_a, stream_b: values.stream_b, algorithm: values.algorithm };
    const span = WINDOWS.find(([key]) => key === windowKey);
    const now = Date.now();
    const [from, to] = windowKey === "custom"
      ? [Date.parse(values.window_start), Date.parse(values.window_end)]
      : [now - span[2], now];
    if (Number.isFinite(from)) body.window_start = new Date(from).toISOString();
    if (Number.isFinite(to)) body.window_end = new Date(to).toISOString();
    if (values.algorithm === "cross_correlation" && values.max_lag_seconds !== "") body.max_lag_seconds = Number(values.max_lag_seconds);
    const got = await api.post("/v1/correlations", body);
    if (got.success) {
      reload();
      navigate(`/correlations/${got.data.correlation_id}`);
    }
    return got;
  });
  const field = (name) => errorProps(answer, name);
  // The custom window's first values; kept, so that a redraw never undoes what was typed.
  const [defaults] = useState(() => ({ from: localInput(Date.now() - 24 * HOUR), to: localInput(Date.now()) }));
  return html`<div class="stack">
    <section class="card wide">
      <${Heading}>Correlate two streams<//>
      ${streams && streams.length === 0 && !more && html`<p class="muted">No streams yet: a device's first readings create them.</p>`}
      ${more && html`<p class="muted">The lists hold the streams of your first ${DEVICE_LIMIT} devices by name; find the others by their name.</p>`}
      <form class="inline-form" id="correlation-form" onSubmit=${submit}>
        <${StreamPicker} name="stream_a" label="First stream" find="Find a device (first)" streams=${streams} initial=${params.a} fallback=${0} answer=${answer} />
        <${StreamPicker} name="stream_b" label="Second stream" find="Find a device (second)" streams=${streams} initial=${params.b} fallback=${1} answer=${answer} />
        <label>Window <select name="window" value=${windowKey} onChange=${(event) => setWindowKey(event.currentTarget.value)}>
          ${WINDOWS.map(([key, label]) => html`<option value=${key}>${label}</option>`)}
        </select></label>
        ${windowKey === "custom" && html`
          <label>From <input type="datetime-local" name="window_start" required defaultValue=${defaults.from} ...${field("window_start")} />
            <${FieldError} answer=${answer} field="window_start" /></label>
          <label>To <input type="datetime-local" name="window_end" required defaultValue=${defaults.to} ...${field("window_end")} />
            <${FieldError} answer=${answer} field="window_end" /></label>`}
        <label>Algorithm <select name="algorithm" value=${algorithm} onChange=${(event) => setAlgorithm(event.currentTarget.value)} ...${field("algorithm")}>
          ${ALGORITHMS.map(([key, label]) => html`<option value=${key}>${label}</option>`)}
        </select><${FieldError} answer=${answer} field="algorithm" /></label>
        ${algorithm === "cross_correlation" && html`<label>Largest lag, seconds
          <input type="number" name="max_lag_seconds" min="0" max="3600" step="any" placeholder="60" ...${field("max_lag_seconds")} />
          <${FieldError} answer=${answer} field="max_lag_seconds" /></label>`}
        <div class="buttons"><button type="submit" disabled=${busy}>Correlate</button></div>
        <${Message} answer=${answer && !answer.success ? answer : null}
          inline=${["stream_a", "stream_b", "algorithm", "max_lag_seconds", ...(windowKey === "custom" ? ["window_start", "window_end"] : [])]} />
      </form>
    </section>
    <section class="card wide">
      <h3>Past results</h3>
      ${past && !past.success && html`<${Message} answer=${past} />`}
      <${ResultTable} items=${past && past.success ? past.data.correlations : []} names=${streams && new Map(streams)} />
      <${Pager} pagination=${past && past.success && past.data.pagination} onPage=${(next) => navigate("/correlations", { ...params, page: next })} />
    </section>
  </div>`;
}

// `names`: the streams the page listed (null while it lists them); the others that a page
// of results names are asked for, once the page's list is known.
function ResultTable({ items, names }) {
  const [asked, setAsked] = useState(() => new Map());
  const ids = items.flatMap((item) => [item.stream_a, item.stream_b]);
  const unknown = names ? [...new Set(ids)].filter((id) => !names.has(id) && !asked.has(id)) : [];
  useEffect(() => {
    if (!unknown.length) return undefined;
    let current = true;
    Promise.all(unknown.map(async (id) => [id, await streamName(id)])).then((found) => {
      if (current) setAsked((now) => new Map([...now, ...found]));
    });
    return () => { current = false; };
  }, [unknown.join(",")]);
  const name = (id) => (names && names.get(id)) || asked.get(id) || "…";
  if (!items.length) return html`<p class="muted">None yet.</p>`;
  return html`<div class="table-scroll"><table id="correlation-table">
    <thead><tr><th scope="col">Computed</th><th scope="col">Streams</th><th scope="col">Algorithm</th><th scope="col">Coefficient</th><th scope="col">Pairs</th><th scope="col">Window</th></tr></thead>
    <tbody>${items.map((item) => html`<tr key=${item.correlation_id}>
      <td><a href=${href(`/correlations/${item.correlation_id}`)}>${formatTime(item.created_at)}</a></td>
      <td>${name(item.stream_a)} × ${name(item.stream_b)}</td>
      <td>${item.algorithm.replaceAll("_", " ")}</td>
      <td>${formatNumber(item.coefficient)}</td>
      <td>${item.sample_count}</td>
      <td>${formatTime(item.window_start)} – ${formatTime(item.window_end)}</td>
    </tr>`)}</tbody>
  </table></div>`;
}

async function streamName(id) {
  const got = await api.get(`/v1/streams/${id}`);
  if (!got.success) return id;
  const device = await api.get(`/v1/devices/${got.data.device_id}`);
  return device.success ? `${device.data.name} · ${got.data.metric_name}` : got.data.metric_name;
}

export function CorrelationResult({ correlationId }) {
  const [answer] = useLoad(() => api.get(`/v1/correlations/${encodeURIComponent(correlationId)}`), [correlationId]);
  const [names, setNames] = useState(["", ""]);
  const result = answer && answer.success ? answer.data : null;
  useEffect(() => {
    if (!result) return;
    Promise.all([streamName(result.stream_a), streamName(result.stream_b)]).then(setNames);
  }, [result && result.correlation_id]);
  if (!answer) return html`<p class="loading">Loading…</p>`;
  if (!result) {
    return html`<section class="card"><${Heading}>Correlation<//><${Message} answer=${answer} />
      <p><a href="#/correlations">Correlate two streams</a></p></section>`;
  }
  const again = href("/correlations", { a: result.stream_a, b: result.stream_b, algorithm: result.algorithm });
  return html`<section class="card wide">
    <p class="crumbs"><a href="#/correlations">Correlations</a> /</p>
    <${Heading}>${names[0] || "…"} × ${names[1] || "…"}<//>
    <div class="chart-layout wide-side">
      <${Scatter} result=${result} names=${names} />
      <dl class="facts" id="correlation-result">
        <dt>Coefficient</dt><dd id="coefficient">${formatNumber(result.coefficient)}</dd>
        <dt>Algorithm</dt><dd>${result.algorithm.replaceAll("_", " ")}</dd>
        <dt>95 % interval</dt><dd>${formatNumber(result.ci_low)} to ${formatNumber(result.ci_high)}</dd>
        <dt>p-value</dt><dd>${result.p_value < 0.0001 ? "< 0.0001" : formatNumber(result.p_value, 4)}</dd>
        <dt>Pairs</dt><dd>${result.sample_count} (effectively ${formatNumber(result.effective_sample_count, 1)} independent)</dd>
        <dt>Grid</dt><dd>${formatNumber(result.grid_seconds)} s</dd>
        ${result.algorithm === "cross_correlation" && html`<dt>Best lag</dt><dd>${formatNumber(result.best_lag_seconds)} s (of ${result.lags_tried} tried)</dd>`}
        <dt>Window</dt><dd>${formatTime(result.window_start)} – ${formatTime(result.window_end)}</dd>
        <dt>Streams</dt><dd><a href=${href(`/streams/${result.stream_a}`)}>first</a> · <a href=${href(`/streams/${result.stream_b}`)}>second</a></dd>
      </dl>
    </div>
    <div class="buttons"><a class="button secondary" href=${again}>Correlate these again…</a></div>
  </section>`;
}

// The readings of both streams averaged on the result's grid, paired bucket by
// bucket (the second shifted by the best lag), as x and y sorted by x.
export function pairs(a, b, result) {
  const start = Date.parse(result.window_start);
  const step = Math.max(1, result.grid_seconds * 1000);
  const lag = Math.round((result.best_lag_seconds * 1000) / step);
  const buckets = (points, shift) => {
    const sums = new Map();
    for (const point of points) {
      const key = Math.floor((Date.parse(point.timestamp) - start) / step) - shift;
      const [sum, count] = sums.get(key) || [0, 0];
      sums.set(key, [sum + point.value, count + 1]);
    }
    return sums;
  };
  const first = buckets(a, 0);
  const second = buckets(b, lag);
  const joined = [];
  for (const [key, [sum, count]] of first) {
    const other = second.get(key);
    if (other) joined.push([sum / count, other[0] / other[1]]);
  }
  joined.sort((p, q) => p[0] - q[0]);
  return [joined.map((pair) => pair[0]), joined.map((pair) => pair[1])];
}

function Scatter({ result, names }) {
  const box = useRef(null);
  const [note, setNote] = useState("Loading the readings…");
  useEffect(() => {
    let chart = null;
    let gone = false;
    const element = box.current;
    // The plot follows its box's width (a phone turned, a window resized).
    const observer = new ResizeObserver(() => {
      if (chart && !gone) chart.setSize({ width: Math.max(240, element.clientWidth), height: 320 });
    });
    (async () => {
      const range = { start: result.window_start, end: result.window_end, max_points: SCATTER_POINTS };
      const [a, b, UPlot] = await Promise.all([
        api.get(`/v1/streams/${result.stream_a}/data`, range),
        api.get(`/v1/streams/${result.stream_b}/data`, range),
        uPlotClass(),
      ]);
      if (gone) return;
      if (!a.success || !b.success) { setNote((a.success ? b : a).message); return; }
      const [xs, ys] = pairs(a.data.data, b.data.data, result);
      const downsampled = a.data.downsampled || b.data.downsampled;
      setNote(`${xs.length} pairs on the ${formatNumber(result.grid_seconds)} s grid${downsampled ? ", from downsampled readings" : ""}.`);
      chart = new UPlot({
        width: Math.max(240, element.clientWidth),
        height: 320,
        scales: { x: { time: false } },
        cursor: { drag: { x: false, y: false } },
        legend: { show: false },
        axes: [{ label: names[0] || "first" }, { label: names[1] || "second", size: 60 }],
        series: [{}, { stroke: "#2459c7", fill: "#2459c7", paths: () => null, points: { show: true, size: 5, fill: "#2459c7" } }],
      }, [xs, ys], element);
      // How many pairs are drawn, for whoever checks the chart (the browser tests).
      element.dataset.points = String(xs.length);
      observer.observe(element);
    })();
    return () => { gone = true; observer.disconnect(); if (chart) chart.destroy(); };
  }, [result.correlation_id, names[0], names[1]]);
  return html`<figure class="scatter">
    <div class="chart" ref=${box} id="scatter" role="img" aria-label=${`Scatter of ${names[0] || "the first stream"} against ${names[1] || "the second"}`}></div>
    <figcaption class="muted">${note}</figcaption>
  </figure>`;
}
