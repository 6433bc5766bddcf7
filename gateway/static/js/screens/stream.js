// A stream's chart: a range preset or a zoomed window (both in the URL, so a
// zoom is a link and Back undoes it), data downsampled by the server to the
// chart's width, stats over the whole window, normalization, the anomaly
// score under the chart, anomalies as markers that open their detail, and
// the stream's detector. In live mode the readings stored from then on are
// appended as they arrive (the chart thinned past LIVE_POINTS), and the window
// and stats grow with them; a zoomed window (a zoom or a pan into the past)
// turns live mode off.
import { api } from "../api.js";
import { createChart } from "../chart.js";
import { micros, watchReadings } from "../live.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { BadWindow, dataQuery, explicitWindow, presetOf, RangeControls, windowParams } from "../range.js";
import { formatNumber, formatTime, Heading, Message, useLoad } from "../ui.js";
import { Detector } from "./detector.js";

// Points a live chart keeps (past them its resolution is halved): a few screens' width of readings.
const LIVE_POINTS = 5_000;
const NORMALIZATIONS = [["none", "Raw values"], ["min_max", "Min–max (0 to 1)"], ["z_score", "Z-score"]];

// The window's stats grown by live readings: the count, mean and population
// standard deviation combined as two groups' are.
function grow(stats, values) {
  const [before, added] = [stats.count || 0, values.length];
  if (!added) return stats;
  let [sum, low, high] = [0, Infinity, -Infinity];
  for (const value of values) { sum += value; low = Math.min(low, value); high = Math.max(high, value); }
  const mean = sum / added;
  let squares = 0;
  for (const value of values) squares += (value - mean) ** 2;
  if (!before) return { count: added, min: low, max: high, mean, stddev: Math.sqrt(squares / added), first: values[0], last: values[added - 1] };
  const count = before + added;
  const delta = mean - stats.mean;
  return {
    count,
    min: Math.min(stats.min, low),
    max: Math.max(stats.max, high),
    mean: stats.mean + (delta * added) / count,
    stddev: Math.sqrt((stats.stddev ** 2 * before + squares + (delta ** 2 * before * added) / count) / count),
    first: stats.first,
    last: values[added - 1],
  };
}

export function Stream({ streamId, params }) {
  const preset = presetOf(params);
  const normalization = NORMALIZATIONS.some(([value]) => value === params.norm) ? params.norm : "none";
  const zoomed = Boolean(explicitWindow(params));
  const box = useRef(null);
  const chart = useRef(null);
  // The chart loads asynchronously; when it is ready it draws the latest answer, not its first render's.
  const latestDraw = useRef(() => {});
  const [width, setWidth] = useState(0);
  const path = `/v1/streams/${encodeURIComponent(streamId)}`;
  const go = (update) => navigate(`/streams/${streamId}`, { range: preset, norm: normalization, ...update });
  const latestGo = useRef(go);
  latestGo.current = go;

  const [info] = useLoad(() => api.get(path), [path]);
  const deviceId = info && info.success ? info.data.device_id : "";
  const [device] = useLoad(async () => (deviceId ? api.get(`/v1/devices/${deviceId}`) : null), [deviceId]);
  // Each answer is marked with what it answers, so live mode starts from the current one only.
  const asked = `${preset}|${params.from}|${params.to}|${normalization}|${width}`;
  const [answer] = useLoad(async () => {
    if (!width) return null;
    const got = await api.get(`${path}/data`, { ...dataQuery(params, width), normalization, include_scores: true });
    return { ...got, asked };
  }, [path, asked]);
  const current = answer && answer.success && answer.asked === asked ? answer : null;
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
      labels: ["value"],
      // Through the ref: the chart outlives this render, the settings may not.
      onWindow: (from, to) => latestGo.current(windowParams(from, to)),
      onMarker: (id) => navigate(`/anomalies/${id}`),
    }).then((built) => {
      if (alive) chart.current = built; else built.destroy();
      latestDraw.current();
    });
    return () => { alive = false; if (chart.current) chart.current.destroy(); chart.current = null; };
  }, [streamId]);

  // The answer drawn last: drawing it again (its anomalies arrived) is not a new answer.
  const drawnAnswer = useRef(null);
  const draw = () => {
    if (!chart.current || !answer || !answer.success) return;
    const fresh = drawnAnswer.current !== answer;
    drawnAnswer.current = answer;
    const data = answer.data;
    const xs = data.data.map((point) => Date.parse(point.timestamp) / 1000);
    const normalized = data.normalization && data.normalization !== "none";
    const values = data.data.map((point) => (normalized ? point.normalized_value ?? null : point.value));
    const scores = data.scores_available ? data.data.map((point) => point.anomaly_score ?? null) : null;
    const found = anomalies && anomalies.success ? anomalies.data.anomalies : [];
    chart.current.update({
      fresh,
      xs,
      series: [values],
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

  const [live, setLive] = useState(false);
  const [liveState, setLiveState] = useState("");
  // Live readings carry raw values: a normalized chart cannot take them.
  const canLive = normalization === "none";
  // A chosen window (zoomed, panned, dragged, or a link's) is the past: live mode is
  // off there, as in Grafana, so the chart, the text and the stats show that window.
  const liveOn = live && canLive && !zoomed;
  // Ticked on a chosen window: the box shows it at once, while the route goes back to
  // the preset (a hash change, a moment later), and only then does watching start.
  const [leaving, setLeaving] = useState(false);
  useEffect(() => { if (zoomed) setLive(false); else setLeaving(false); }, [zoomed]);
  // Ticking Live on a chosen window goes back to the preset, which ends now.
  const toggleLive = (event) => {
    const on = event.currentTarget.checked;
    setLive(on);
    setLeaving(on && zoomed);
    if (on && zoomed) go({ from: undefined, to: undefined });
  };
  // What live readings added to the answer drawn: their count, the stats and
  // window grown by them, and the position to resume watching after.
  const [grown, setGrown] = useState(null);
  const resume = useRef(null);
  // Watching starts once the answer for this window is drawn, and stops when Live
  // is turned off and when the screen is left.
  useEffect(() => {
    if (!liveOn || !current) return undefined;
    // Resume after the newest reading drawn, so that none falls between the chart's
    // answer and the live ones, nor is appended twice when Live is turned on again.
    const points = current.data.data;
    if (!resume.current || resume.current.answer !== current) {
      resume.current = { answer: current, after: points.length ? micros(points[points.length - 1].timestamp) : 0 };
    }
    const source = watchReadings(streamId, {
      after: resume.current.after,
      onState: setLiveState,
      onReadings: (xs, values, position) => {
        resume.current.after = position;
        const [, end] = chart.current ? chart.current.append(xs, [values], LIVE_POINTS) : [];
        setGrown((was) => {
          const base = was && was.answer === current ? was : { answer: current, count: 0, stats: current.data.stats, to: null };
          const to = typeof end === "number" ? end * 1000 : base.to;
          return { answer: current, count: base.count + xs.length, stats: grow(base.stats, values), to };
        });
      },
    });
    return () => { source.stop(); setLiveState(""); };
  }, [liveOn, streamId, current]);
  // Live readings drawn over the answer shown (they stay when Live is turned off).
  const added = grown && grown.answer === answer ? grown : null;

  const view = range ? {
    from: Date.parse(range.start),
    to: Math.max(Date.parse(range.end), added && added.to !== null ? added.to : -Infinity),
  } : null;
  const stream = info && info.success ? info.data : null;
  const stats = answer && answer.success ? (added ? added.stats : answer.data.stats) : null;
  const empty = Boolean(stats) && !stats.count;
  const found = anomalies && anomalies.success ? anomalies.data.anomalies : [];
  return html`<div class="stack">
    <section class="card wide">
      <nav class="crumbs" aria-label="Breadcrumb"><a href="#/devices">Devices</a> ›
        ${stream && html` <a href=${href(`/devices/${stream.device_id}`)}>${device && device.success ? device.data.name : "device"}</a> ›`}</nav>
      <${Heading}>${stream ? stream.metric_name : "Stream"}<//>
      ${info && !info.success && html`<${Message} answer=${info} />`}
      <${BadWindow} params=${params} />
      <div class="toolbar">
        <${RangeControls} path=${`/streams/${streamId}`} params=${params} keep=${{ norm: normalization }} view=${view} />
        <label class="inline">Normalization
          <select value=${normalization} onChange=${(event) => go({ norm: event.currentTarget.value, from: params.from, to: params.to })}>
            ${NORMALIZATIONS.map(([value, text]) => html`<option value=${value}>${text}</option>`)}
          </select>
        </label>
        <label class="inline" title=${canLive ? "Append readings as they are stored" : "Live shows raw values: set Normalization to raw"}>
          <input type="checkbox" id="live-toggle" checked=${liveOn || (leaving && live)} disabled=${!canLive}
            onChange=${toggleLive} /> Live</label>
        ${liveOn && liveState && html`<span class=${`badge live-${liveState}`} id="live-state">${liveState} · ${added ? added.count : 0} new</span>`}
        <${LiveAnnouncer} state=${liveOn ? liveState : ""} />
        <a class="button secondary small" href=${href("/correlations", { a: streamId })}>Correlate with…</a>
      </div>
      <p class="muted">Drag across the chart, hold Ctrl and turn the wheel over it, or use the buttons to zoom; the server answers the new window at the chart's resolution.
        ${view && html` <span id="shown-window">Showing ${formatTime(view.from)} – ${formatTime(view.to)}${liveOn ? " (live)" : ""}</span>`}
        ${answer && answer.success && answer.data.downsampled && ` · ${answer.data.data.length} points (${answer.data.downsampling})`}</p>
      ${answer && !answer.success && html`<${Message} answer=${answer} />`}
      <div class="chart-layout">
        <div class="chart" ref=${box} id="stream-chart" role="figure" aria-label=${`Chart of ${stream ? stream.metric_name : "the stream"}`}
          aria-describedby="shown-window stream-stats">
          <div class="chart-values"></div>
          <div class="chart-scores" hidden></div>
          ${empty && html`<p class="chart-empty" role="status">No readings in this window</p>`}
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

// What a screen reader hears of live mode: its state when it changes (on,
// reconnecting, off), never each batch of readings, which arrive up to ten
// times a second and would drown everything else; the badge shows the count,
// and the stats beside the chart say what the readings added. The region is
// always there, so that a state put in it is announced.
const LIVE_SAID = { connecting: "Live: connecting", live: "Live: new readings are being added to the chart", reconnecting: "Live: the connection dropped; reconnecting" };

function LiveAnnouncer({ state }) {
  const [said, setSaid] = useState("");
  const was = useRef("");
  useEffect(() => {
    if (state === was.current) return;
    setSaid(state ? LIVE_SAID[state] || `Live: ${state}` : (was.current ? "Live off" : ""));
    was.current = state;
  }, [state]);
  return html`<span class="visually-hidden" role="status" id="live-announcer">${said}</span>`;
}

// Over no readings the server's stats are zeros: shown as dashes.
function Stats({ stats }) {
  const known = stats && stats.count ? stats : null;
  const rows = [["Readings", stats && (stats.count || 0)], ["Min", known && formatNumber(known.min)], ["Max", known && formatNumber(known.max)],
    ["Mean", known && formatNumber(known.mean)], ["Std dev", known && formatNumber(known.stddev)],
    ["First", known && formatNumber(known.first)], ["Last", known && formatNumber(known.last)]];
  return html`<aside class="stats" id="stream-stats" aria-label="Statistics over the window">
    <h3>Stats</h3>
    <dl class="facts">${rows.map(([name, value]) => html`<dt>${name}</dt><dd>${value ?? "—"}</dd>`)}</dl>
  </aside>`;
}
