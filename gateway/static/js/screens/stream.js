// A stream's chart: a range preset or a zoomed window (both in the URL, so a
// zoom is a link and Back undoes it), data downsampled by the server to the
// chart's width, stats over the whole window, normalization, the anomaly
// score under the chart, anomalies as markers that open their detail, and
// the stream's detector.
import { api } from "../api.js";
import { createChart } from "../chart.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { formatNumber, formatTime, Heading, Message, useLoad } from "../ui.js";
import { Detector } from "./detector.js";

const HOUR = 3_600_000;
export const PRESETS = { "1h": HOUR, "24h": 24 * HOUR, "7d": 7 * 24 * HOUR, all: null };
// A stream opens on all its readings, from its first to now: the server
// downsamples any length to the chart's width, and a young stream fills the chart.
const DEFAULT_PRESET = "all";
const NORMALIZATIONS = [["none", "Raw values"], ["min_max", "Min–max (0 to 1)"], ["z_score", "Z-score"]];
// A min and a max per pixel column is all a chart can show.
const POINTS_PER_PIXEL = 2;
const MAX_POINTS = 10_000;

// The window to ask for, in ms; null ends mean "the stream's first reading" / "now".
function windowOf(params) {
  if (params.from && params.to) return { from: Number(params.from), to: Number(params.to) };
  const span = PRESETS[params.range || DEFAULT_PRESET];
  if (span === null || span === undefined) return { from: null, to: null };
  const now = Date.now();
  return { from: now - span, to: now };
}

const iso = (ms) => (ms === null ? undefined : new Date(ms).toISOString());

export function Stream({ streamId, params }) {
  const preset = params.range in PRESETS ? params.range : DEFAULT_PRESET;
  const normalization = params.norm || "none";
  const box = useRef(null);
  const chart = useRef(null);
  // The chart loads asynchronously; when it is ready it draws the latest answer, not its first render's.
  const latestDraw = useRef(() => {});
  const [width, setWidth] = useState(0);
  const path = `/v1/streams/${encodeURIComponent(streamId)}`;
  const go = (update) => navigate(`/streams/${streamId}`, { range: preset, norm: normalization, ...update });

  const [info] = useLoad(() => api.get(path), [path]);
  const deviceId = info && info.success ? info.data.device_id : "";
  const [device] = useLoad(async () => (deviceId ? api.get(`/v1/devices/${deviceId}`) : null), [deviceId]);
  const [answer] = useLoad(async () => {
    if (!width) return null;
    const asked = windowOf(params);
    const got = await api.get(`${path}/data`, {
      start: iso(asked.from),
      end: iso(asked.to),
      max_points: Math.min(MAX_POINTS, Math.max(2, Math.round(width * POINTS_PER_PIXEL))),
      normalization,
      include_scores: true,
    });
    return got;
  }, [path, preset, params.from, params.to, normalization, width]);
  const range = answer && answer.success ? answer.data.time_range : null;
  const [anomalies] = useLoad(async () => {
    if (!range) return null;
    return api.get("/v1/anomalies", { stream_id: streamId, start: range.start, end: range.end, limit: 100 });
  }, [range && range.start, range && range.end]);

  // The chart is built once the container exists, and torn down with the screen.
  useEffect(() => {
    let alive = true;
    setWidth(box.current.clientWidth);
    createChart(box.current, {
      label: "value",
      onWindow: (from, to) => go({ from: Math.round(from), to: Math.round(to) }),
      onMarker: (id) => navigate(`/anomalies/${id}`),
    }).then((built) => {
      if (alive) chart.current = built; else built.destroy();
      latestDraw.current();
    });
    return () => { alive = false; if (chart.current) chart.current.destroy(); chart.current = null; };
  }, [streamId]);

  const draw = () => {
    if (!chart.current || !answer || !answer.success) return;
    const data = answer.data;
    const xs = data.data.map((point) => Date.parse(point.timestamp) / 1000);
    const normalized = data.normalization && data.normalization !== "none";
    const values = data.data.map((point) => (normalized ? point.normalized_value ?? null : point.value));
    const scores = data.scores_available ? data.data.map((point) => point.anomaly_score ?? null) : null;
    const found = anomalies && anomalies.success ? anomalies.data.anomalies : [];
    chart.current.update({
      xs,
      values,
      scores,
      window: [Date.parse(data.time_range.start) / 1000, Date.parse(data.time_range.end) / 1000],
      marks: found.map((item) => ({
        x: Date.parse(item.detected_at) / 1000,
        id: item.anomaly_id,
        status: item.status,
        label: `${item.anomaly_type} at ${formatTime(item.detected_at)} (${item.status})`,
      })),
    });
  };
  latestDraw.current = draw;
  useEffect(draw, [answer, anomalies]);

  const view = range ? { from: Date.parse(range.start), to: Date.parse(range.end) } : null;
  const pan = (fraction) => {
    const span = view.to - view.from;
    go({ from: Math.round(view.from + span * fraction), to: Math.round(view.to + span * fraction) });
  };
  // Zooms about the window's middle: `factor` 2 shows twice the span, 0.5 half of it.
  const zoom = (factor) => {
    const middle = (view.from + view.to) / 2;
    const half = ((view.to - view.from) * factor) / 2;
    go({ from: Math.round(middle - half), to: Math.round(middle + half) });
  };
  const stream = info && info.success ? info.data : null;
  const stats = answer && answer.success ? answer.data.stats : null;
  const found = anomalies && anomalies.success ? anomalies.data.anomalies : [];
  return html`<div class="stack">
    <section class="card wide">
      <nav class="crumbs" aria-label="Breadcrumb"><a href="#/devices">Devices</a> ›
        ${stream && html` <a href=${href(`/devices/${stream.device_id}`)}>${device && device.success ? device.data.name : "device"}</a> ›`}</nav>
      <${Heading}>${stream ? stream.metric_name : "Stream"}<//>
      ${info && !info.success && html`<${Message} answer=${info} />`}
      <div class="toolbar">
        <div role="group" aria-label="Range" class="buttons">
          ${Object.keys(PRESETS).map((key) => html`<a
            class=${`button small ${key === preset && !params.from ? "" : "secondary"}`}
            aria-current=${key === preset && !params.from ? "true" : undefined}
            href=${href(`/streams/${streamId}`, { range: key, norm: normalization })}>${key === "all" ? "All" : key}</a>`)}
        </div>
        <div role="group" aria-label="Pan and zoom" class="buttons">
          <button type="button" class="secondary small" disabled=${!view} onClick=${() => pan(-0.5)}>◀ Earlier</button>
          <button type="button" class="secondary small" disabled=${!view} onClick=${() => pan(0.5)}>Later ▶</button>
          <button type="button" class="secondary small" disabled=${!view} onClick=${() => zoom(0.5)}>Zoom in</button>
          <button type="button" class="secondary small" disabled=${!view} onClick=${() => zoom(2)}>Zoom out</button>
        </div>
        <label class="inline">Normalization
          <select value=${normalization} onChange=${(event) => go({ norm: event.currentTarget.value, from: params.from, to: params.to })}>
            ${NORMALIZATIONS.map(([value, text]) => html`<option value=${value}>${text}</option>`)}
          </select>
        </label>
      </div>
      <p class="muted">Drag across the chart (or use the buttons) to zoom; the server answers the new window at the chart's resolution.
        ${range && ` Showing ${formatTime(range.start)} – ${formatTime(range.end)}`}
        ${answer && answer.success && answer.data.downsampled && ` · ${answer.data.data.length} points (${answer.data.downsampling})`}</p>
      ${answer && !answer.success && html`<${Message} answer=${answer} />`}
      <div class="chart-layout">
        <div class="chart" ref=${box} id="stream-chart">
          <div class="chart-values"></div>
          <div class="chart-scores" hidden></div>
        </div>
        <${Stats} stats=${stats} />
      </div>
    </section>
    <section class="card wide">
      <h3>Anomalies in this window</h3>
      ${found.length === 0 ? html`<p class="muted">None.</p>` : html`<ul class="anomaly-links">
        ${found.map((item) => html`<li key=${item.anomaly_id}><a href=${href(`/anomalies/${item.anomaly_id}`)}>
          ${item.anomaly_type} at ${formatTime(item.detected_at)}</a> <span class=${`badge review-${item.status}`}>${item.status}</span></li>`)}
      </ul>`}
    </section>
    <${Detector} streamId=${streamId} />
  </div>`;
}

function Stats({ stats }) {
  const rows = [["Readings", stats && stats.count], ["Min", stats && formatNumber(stats.min)], ["Max", stats && formatNumber(stats.max)],
    ["Mean", stats && formatNumber(stats.mean)], ["Std dev", stats && formatNumber(stats.stddev)],
    ["First", stats && formatNumber(stats.first)], ["Last", stats && formatNumber(stats.last)]];
  return html`<aside class="stats" aria-label="Statistics over the window">
    <h3>Stats</h3>
    <dl class="facts">${rows.map(([name, value]) => html`<dt>${name}</dt><dd>${value ?? "—"}</dd>`)}</dl>
  </aside>`;
}
