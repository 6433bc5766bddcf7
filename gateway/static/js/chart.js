// Charts of streams on uPlot: one or more value series on one time axis, an
// optional anomaly-score strip under them on the same axis, anomaly markers as focusable buttons, and
// drag-select (and Ctrl + wheel) that reports the chosen time window instead of
// zooming locally, so the screen can ask the server for that window at full resolution.
//
// uPlot is loaded only when a chart is first shown, keeping it out of the
// console's first load.
const loading = { uPlot: null };

// The uPlot class, loaded (with its stylesheet) on first use.
export async function uPlotClass() {
  if (!loading.uPlot) {
    const link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = "/static/vendor/uplot.css";
    document.head.append(link);
    loading.uPlot = import("../vendor/uplot.js").then((module) => module.default);
  }
  return loading.uPlot;
}

// Performance marks for whoever measures how fast a chart answers (the chart
// benchmark, bench/chart_draw.py): a range control or a drag marks ASKED; the
// first draw of the next new data marks DRAWN and measures ASKED → DRAWN as
// CHART_MEASURE (performance.getEntriesByName(CHART_MEASURE)).
export const CHART_MEASURE = "chart:asked-to-drawn";
const ASKED = "chart:asked";
const DRAWN = "chart:drawn";

export function markAsked() {
  performance.clearMarks(ASKED);
  performance.mark(ASKED);
}

function markDrawn() {
  if (!performance.getEntriesByName(ASKED, "mark").length) return;
  performance.mark(DRAWN);
  performance.measure(CHART_MEASURE, ASKED, DRAWN);
  performance.clearMarks(ASKED);
}

const SYNC_KEY = "iot-stream";
const COLOURS = ["#2459c7", "#c2410c", "#15803d", "#7c3aed", "#0e7490", "#b45309", "#be185d", "#4d7c0f"];
const SCORE_HEIGHT = 110;

function markerButton(marker, onMarker) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "▼";
  button.dataset.anomalyId = marker.id;
  button.addEventListener("mousedown", (event) => event.stopPropagation());
  button.addEventListener("click", () => onMarker(marker.id));
  return button;
}

function markerLayer(onMarker) {
  let markers = [];
  // One button per anomaly, kept across redraws so that a redraw (new data,
  // a resize) never takes the keyboard focus away from a marker.
  const buttons = new Map();
  return {
    set(next) { markers = next; },
    // Placed after each redraw, as buttons over the plot: keyboard users reach
    // them with Tab, and a click opens the anomaly instead of starting a zoom.
    draw(u) {
      let layer = u.over.querySelector(".markers");
      if (!layer) {
        layer = document.createElement("div");
        layer.className = "markers";
        u.over.append(layer);
      }
      const [min, max] = [u.scales.x.min, u.scales.x.max];
      const shown = markers.filter((marker) => marker.x >= min && marker.x <= max);
      const keep = new Set(shown.map((marker) => marker.id));
      for (const [id, button] of buttons) {
        if (!keep.has(id)) { button.remove(); buttons.delete(id); }
      }
      for (const marker of shown) {
        let button = buttons.get(marker.id);
        if (!button) {
          button = markerButton(marker, onMarker);
          buttons.set(marker.id, button);
          layer.append(button);
        }
        button.className = `marker marker-${marker.status}`;
        button.title = marker.label;
        button.setAttribute("aria-label", marker.label);
        button.style.left = `${u.valToPos(marker.x, "x")}px`;
      }
    },
  };
}

// Halves a live chart's points while it holds more than `keep`: of each run of
// four, the lowest and the highest value of the first series stay (in time
// order), as the server downsamples, so the chart still spans its whole window
// and no spike is lost; the other series take their values at the same times,
// the scores the highest of the run. `columns` is uPlot's data, [xs, ...series].
function thinned(columns, scores, keep) {
  let [kept, keptScores] = [columns, scores];
  while (kept[0].length > keep) {
    const values = kept[1];
    const picks = [];
    const runs = [];
    for (let start = 0; start < values.length; start += 4) {
      const end = Math.min(start + 4, values.length);
      let [low, high] = [start, start];
      for (let i = start + 1; i < end; i += 1) {
        if (values[i] === null) continue;
        if (values[low] === null || values[i] < values[low]) low = i;
        if (values[high] === null || values[i] > values[high]) high = i;
      }
      for (const pick of low === high ? [low] : [Math.min(low, high), Math.max(low, high)]) {
        picks.push(pick);
        runs.push([start, end]);
      }
    }
    const [from, runScores] = [kept, keptScores];
    kept = from.map((column) => picks.map((i) => column[i]));
    keptScores = runScores && runs.map(([start, end]) => {
      const found = runScores.slice(start, end).filter((score) => score !== null);
      return found.length ? Math.max(...found) : null;
    });
  }
  return [kept, keptScores];
}

// Zoom by Ctrl (or ⌘) + wheel, and a trackpad's pinch (which the browser sends as
// such): the chart zooms at once about the pointer, and once the wheel pauses
// `onWindow(from, to)` (seconds) asks the server for the window. A plain wheel
// still scrolls the page, which the hint says. Answers whether a zoom is pending.
const WHEEL_PAUSE_MS = 300;
const HINT_MS = 1_500;

function wheelZoom(u, scaled, onWindow) {
  let timer = 0;
  let hidden = 0;
  const hint = document.createElement("div");
  hint.className = "chart-hint";
  hint.setAttribute("aria-hidden", "true");
  hint.textContent = "Hold Ctrl (or ⌘) and turn the wheel to zoom";
  u.over.append(hint);
  u.over.addEventListener("wheel", (event) => {
    if (!event.ctrlKey && !event.metaKey) {
      hint.classList.add("shown");
      clearTimeout(hidden);
      hidden = setTimeout(() => hint.classList.remove("shown"), HINT_MS);
      return;
    }
    event.preventDefault();
    const { min, max } = u.scales.x;
    if (!(max > min)) return;
    const box = u.over.getBoundingClientRect();
    const at = u.posToVal(event.clientX - box.left, "x");
    // Lines and pages as pixels; one notch of a mouse wheel (about 100 px) zooms by about 1.4.
    const pixels = event.deltaY * ({ 1: 16, 2: box.height }[event.deltaMode] ?? 1);
    const factor = Math.min(2, Math.max(0.5, Math.exp(pixels / 300)));
    const next = { min: at - (at - min) * factor, max: at + (max - at) * factor };
    for (const chart of scaled()) chart.setScale("x", next);
    clearTimeout(timer);
    timer = setTimeout(() => {
      timer = 0;
      markAsked();
      onWindow(next.min, next.max);
    }, WHEEL_PAUSE_MS);
  }, { passive: false });
  return {
    pending: () => timer !== 0,
    stop() { clearTimeout(timer); clearTimeout(hidden); timer = 0; },
  };
}

// `labels` names the value series; `onWindow(fromMs, toMs)` gets a dragged
// (or wheel-zoomed) window, `onMarker(id)` a marker's anomaly.
export async function createChart(container, { onWindow, onMarker = () => {}, labels }) {
  const UPlot = await uPlotClass();
  const width = () => Math.max(240, container.clientWidth);
  const markers = markerLayer(onMarker);
  // Set by an update with new data; its first draw is the answer's.
  let fresh = false;
  const valueOptions = {
    width: width(),
    height: 320,
    cursor: { sync: { key: SYNC_KEY }, drag: { x: true, y: false, setScale: false } },
    scales: { x: { time: true } },
    // Several series share the union of their times, so each has holes where
    // only the others have points: drawn across. One series has no such holes.
    series: [{}, ...labels.map((label, index) => ({
      label, stroke: COLOURS[index % COLOURS.length], width: 1.5, spanGaps: labels.length > 1,
    }))],
    axes: [{}, { size: 60 }],
    hooks: {
      draw: [(u) => {
        markers.draw(u);
        if (fresh) { fresh = false; markDrawn(); }
      }],
      setSelect: [(u) => {
        if (u.select.width < 4) return;
        markAsked();
        const from = u.posToVal(u.select.left, "x");
        const to = u.posToVal(u.select.left + u.select.width, "x");
        u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
        onWindow(from * 1000, to * 1000);
      }],
    },
  };
  const valueChart = new UPlot(valueOptions, [[], ...labels.map(() => [])], container.querySelector(".chart-values"));
  const scoreElement = container.querySelector(".chart-scores");
  const scoreChart = new UPlot({
    width: width(),
    height: SCORE_HEIGHT,
    cursor: { sync: { key: SYNC_KEY }, drag: { x: false, y: false } },
    scales: { x: { time: true }, y: { range: [0, 1] } },
    legend: { show: true },
    series: [{}, { label: "anomaly score", stroke: "#b42318", fill: "rgba(180,35,24,0.12)", width: 1 }],
    axes: [{}, { size: 60 }],
  }, [[], []], scoreElement);

  // The x range shown, in seconds: the window of the last update, grown by live readings.
  let shown = null;
  const scaled = () => (scoreElement.hidden ? [valueChart] : [valueChart, scoreChart]);
  const wheel = wheelZoom(valueChart, scaled, (from, to) => onWindow(from * 1000, to * 1000));

  const observer = new ResizeObserver(() => {
    valueChart.setSize({ width: width(), height: 320 });
    scoreChart.setSize({ width: width(), height: SCORE_HEIGHT });
  });
  observer.observe(container);

  return {
    // xs in seconds, one array of values per label (null where a series has no point);
    // `window` [from, to] in seconds fixes the x axis to the range asked for;
    // `fresh` is false when only the marks changed (the data is the one drawn).
    // Marks alone are redrawn over the data drawn, live readings included.
    update({ xs, series, scores = null, window, marks = [], fresh: isNew = true }) {
      markers.set(marks);
      if (!isNew && shown) {
        valueChart.redraw(false, false);
        return;
      }
      fresh = isNew;
      shown = [...window];
      valueChart.setData([xs, ...series], false);
      // How many points are drawn, for whoever checks the chart (the browser tests).
      container.dataset.points = String(xs.length);
      valueChart.setScale("x", { min: window[0], max: window[1] });
      scoreElement.hidden = !scores;
      if (scores) {
        scoreChart.setData([xs, scores], false);
        scoreChart.setScale("x", { min: window[0], max: window[1] });
      }
    },
    // Live mode: readings after the last drawn (xs in seconds, one array of
    // values per label); past `keep` points the chart's resolution is halved
    // (see thinned) so that a long live view stays light. The x axis runs from
    // the window's start to the newest reading; answers it ([from, to], seconds).
    append(newXs, newSeries, keep) {
      const [xs, ...series] = valueChart.data;
      // Live readings have no score yet: the strip keeps the same times, without values.
      const [data, scores] = thinned(
        [xs.concat(newXs), ...series.map((old, i) => old.concat(newSeries[i]))],
        scoreElement.hidden ? null : scoreChart.data[1].concat(newXs.map(() => null)),
        keep,
      );
      const [xsNow] = data;
      if (xsNow.length) shown = [shown ? shown[0] : xsNow[0], Math.max(shown ? shown[1] : -Infinity, xsNow[xsNow.length - 1])];
      valueChart.setData(data, false);
      container.dataset.points = String(xsNow.length);
      if (scores) scoreChart.setData([xsNow, scores], false);
      // A wheel zoom waiting for the server keeps its window.
      if (shown && !wheel.pending()) for (const chart of scaled()) chart.setScale("x", { min: shown[0], max: shown[1] });
      return shown ? [...shown] : [null, null];
    },
    destroy() {
      wheel.stop();
      observer.disconnect();
      valueChart.destroy();
      scoreChart.destroy();
    },
  };
}
