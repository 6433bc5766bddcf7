// The time window of a chart, kept in the URL: a preset (1h, 24h, 7d, all)
// or a zoomed window (from/to in ms), and the buttons that move it. Charts ask
// the server for the window at their own width.
import { markAsked } from "./chart.js";
import { html } from "./lib.js";
import { href, navigate } from "./router.js";

const HOUR = 3_600_000;
export const PRESETS = { "1h": HOUR, "24h": 24 * HOUR, "7d": 7 * 24 * HOUR, all: null };
// A chart opens on all the readings, from the first to now: the server
// downsamples any length to the chart's width, and a young stream fills the chart.
export const DEFAULT_PRESET = "all";
// A min and a max per pixel column is all a chart can show.
const POINTS_PER_PIXEL = 2;
const MAX_POINTS = 10_000;

export const presetOf = (params) => (params.range in PRESETS ? params.range : DEFAULT_PRESET);

// The window to ask for, in ms; null ends mean "the first reading" / "now".
export function windowOf(params) {
  if (params.from && params.to) return { from: Number(params.from), to: Number(params.to) };
  const span = PRESETS[presetOf(params)];
  if (span === null) return { from: null, to: null };
  const now = Date.now();
  return { from: now - span, to: now };
}

// The query of a stream-data request for the window of `params` at `width` pixels.
export function dataQuery(params, width) {
  const asked = windowOf(params);
  const iso = (ms) => (ms === null ? undefined : new Date(ms).toISOString());
  return {
    start: iso(asked.from),
    end: iso(asked.to),
    max_points: Math.min(MAX_POINTS, Math.max(2, Math.round(width * POINTS_PER_PIXEL))),
  };
}

// Presets as links, and pan and zoom as buttons (the keyboard's way to zoom;
// the mouse can also drag across the chart). `path` is the screen's route,
// `keep` the other parameters it keeps, `view` the window shown ({from, to}
// in ms) once the server has answered.
export function RangeControls({ path, params, keep, view }) {
  const preset = presetOf(params);
  const go = (from, to) => {
    markAsked();
    navigate(path, { range: preset, ...keep, from: Math.round(from), to: Math.round(to) });
  };
  const pan = (fraction) => {
    const span = view.to - view.from;
    go(view.from + span * fraction, view.to + span * fraction);
  };
  // Zooms about the window's middle: `factor` 2 shows twice the span, 0.5 half of it.
  const zoom = (factor) => {
    const middle = (view.from + view.to) / 2;
    const half = ((view.to - view.from) * factor) / 2;
    go(middle - half, middle + half);
  };
  return html`
    <div role="group" aria-label="Range" class="buttons">
      ${Object.keys(PRESETS).map((key) => html`<a
        class=${`button small ${key === preset && !params.from ? "" : "secondary"}`}
        aria-current=${key === preset && !params.from ? "true" : undefined}
        href=${href(path, { range: key, ...keep })} onClick=${markAsked}>${key === "all" ? "All" : key}</a>`)}
    </div>
    <div role="group" aria-label="Pan and zoom" class="buttons">
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => pan(-0.5)}>◀ Earlier</button>
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => pan(0.5)}>Later ▶</button>
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => zoom(0.5)}>Zoom in</button>
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => zoom(2)}>Zoom out</button>
    </div>`;
}
