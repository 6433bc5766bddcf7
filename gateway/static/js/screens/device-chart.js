// Every stream of a device on one time axis. Units differ between metrics,
// so each series is min-max normalised over the window (0 to 1); the stats
// table beside the chart gives each one's real range.
import { api } from "../api.js";
import { createChart } from "../chart.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { BadWindow, dataQuery, presetOf, RangeControls, windowParams } from "../range.js";
import { formatNumber, formatTime, Heading, Message, useLoad } from "../ui.js";

// The union of the series' times, and each series' values on it (null where it has no point).
function align(answers) {
  const columns = answers.map((data) => new Map(data.data.map((point) => [Date.parse(point.timestamp) / 1000, point.normalized_value ?? null])));
  const xs = [...new Set(columns.flatMap((column) => [...column.keys()]))].sort((a, b) => a - b);
  return { xs, series: columns.map((column) => xs.map((x) => (column.has(x) ? column.get(x) : null))) };
}

export function DeviceChart({ deviceId, params }) {
  const path = `/devices/${deviceId}/chart`;
  const box = useRef(null);
  const chart = useRef(null);
  // The chart loads asynchronously; when it is ready it draws the latest answers.
  const latestDraw = useRef(() => {});
  const [width, setWidth] = useState(0);
  const [device] = useLoad(() => api.get(`/v1/devices/${encodeURIComponent(deviceId)}`), [deviceId]);
  const [list] = useLoad(() => api.get(`/v1/devices/${encodeURIComponent(deviceId)}/streams`), [deviceId]);
  const streams = list && list.success ? list.data.streams : [];
  const [answers] = useLoad(async () => {
    if (!width || !streams.length) return null;
    const query = { ...dataQuery(params, width), normalization: "min_max" };
    return Promise.all(streams.map((stream) => api.get(`/v1/streams/${stream.stream_id}/data`, query)));
  }, [streams.length, presetOf(params), params.from, params.to, width]);
  const failed = answers ? answers.find((answer) => !answer.success) : null;
  const data = answers && !failed ? answers.map((answer) => answer.data) : null;

  // Built once the streams are known (a series each), torn down with the screen.
  useEffect(() => {
    if (!streams.length) return undefined;
    let alive = true;
    setWidth(box.current.clientWidth);
    createChart(box.current, {
      labels: streams.map((stream) => stream.metric_name),
      onWindow: (from, to) => navigate(path, windowParams(from, to)),
    }).then((built) => {
      if (alive) chart.current = built; else built.destroy();
      latestDraw.current();
    });
    return () => { alive = false; if (chart.current) chart.current.destroy(); chart.current = null; };
  }, [streams.length]);

  // The window shown spans every answer's range: with no start asked ("all"),
  // each stream's range starts at its own first reading.
  const view = data && data.length ? {
    from: Math.min(...data.map((item) => Date.parse(item.time_range.start))),
    to: Math.max(...data.map((item) => Date.parse(item.time_range.end))),
  } : null;
  const draw = () => {
    if (chart.current && data && view) chart.current.update({ ...align(data), window: [view.from / 1000, view.to / 1000] });
  };
  latestDraw.current = draw;
  useEffect(draw, [answers]);
  // Over no readings a stream's stats are zeros: said so instead.
  const empty = data && data.every((item) => !item.stats.count);

  return html`<section class="card wide">
    <nav class="crumbs" aria-label="Breadcrumb"><a href="#/devices">Devices</a> › <a
      href=${href(`/devices/${deviceId}`)}>${device && device.success ? device.data.name : "device"}</a> ›</nav>
    <${Heading}>All streams<//>
    ${list && !list.success && html`<${Message} answer=${list} />`}
    ${list && list.success && !streams.length && html`<p class="muted">No streams yet.</p>`}
    <${BadWindow} params=${params} />
    <div class="toolbar"><${RangeControls} path=${path} params=${params} keep=${{}} view=${view} /></div>
    <p class="muted" id="device-chart-window">Each stream is scaled to 0–1 over the window; drag across the chart (or hold Ctrl and turn the wheel over it) to zoom.
      ${view && ` Showing ${formatTime(view.from)} – ${formatTime(view.to)}`}</p>
    ${failed && html`<${Message} answer=${failed} />`}
    <div class="chart-layout">
      <div class="chart" ref=${box} id="device-chart" role="figure" aria-describedby="device-chart-window device-chart-ranges"
        aria-label=${`Chart of every stream of ${device && device.success ? device.data.name : "the device"}`}>
        <div class="chart-values"></div>
        <div class="chart-scores" hidden></div>
        ${empty && html`<p class="chart-empty" role="status">No readings in this window</p>`}
      </div>
      <aside class="stats" id="device-chart-ranges" aria-label="Range of each stream over the window">
        <h3>Ranges</h3>
        <dl class="facts">${data && data.map((item, index) => html`<dt><a href=${href(`/streams/${streams[index].stream_id}`)}>${streams[index].metric_name}</a></dt>
          <dd>${item.stats.count ? `${formatNumber(item.stats.min)} to ${formatNumber(item.stats.max)}` : "no readings"}</dd>`)}</dl>
      </aside>
    </div>
  </section>`;
}
