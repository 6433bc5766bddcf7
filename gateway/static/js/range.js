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

// Own keys only: "?range=toString" is no preset.
const isPreset = (key) => Object.hasOwn(PRESETS, key);
export const presetOf = (params) => (isPreset(params.range) ? params.range : DEFAULT_PRESET);

// The most a Date holds either side of 1970, and the narrowest window asked for
// (a zoom in never asks for an empty one).
const MAX_DATE_MS = 8.64e15;
const MIN_SPAN_MS = 1_000;

// The zoomed window of a link: {from, to} in ms; null when it has none, or
// when from/to is there but is not a window (not a time, or `to` not after
// `from`): the preset's window is shown instead, and BadWindow says so.
export function explicitWindow(params) {
  if (params.from === undefined && params.to === undefined) return null;
  const time = (text) => {
    const ms = text ? Number(text) : Number.NaN;
    return Number.isFinite(ms) && Math.abs(ms) <= MAX_DATE_MS ? ms : null;
  };
  const [from, to] = [time(params.from), time(params.to)];
  return from !== null && to !== null && to > from ? { from, to } : null;
}

// The window to ask for, in ms; null ends mean "the first reading" / "now".
export function windowOf(params) {
  const chosen = explicitWindow(params);
  if (chosen) return chosen;
  const span = PRESETS[presetOf(params)];
  if (span === null) return { from: null, to: null };
  const now = Date.now();
  return { from: now - span, to: now };
}

// The parameters of a chosen window (a drag, a zoom, a pan): whole ms, at
// least MIN_SPAN_MS wide about its middle.
export function windowParams(from, to) {
  const middle = (from + to) / 2;
  const half = Math.max(to - from, MIN_SPAN_MS) / 2;
  return { from: Math.round(middle - half), to: Math.round(middle + half) };
}

const presetLabel = (key) => (key === "all" ? "All" : key);

// Says when the link's range or window could not be read and what is shown instead.
export function BadWindow({ params }) {
  const badRange = params.range !== undefined && !isPreset(params.range);
  const badWindow = (params.from !== undefined || params.to !== undefined) && !explicitWindow(params);
  if (!badRange && !badWindow) return null;
  const what = badWindow
    ? `from=${params.from ?? ""} to=${params.to ?? ""} is not a time window`
    : `range=${params.range} is not one of 1h, 24h, 7d, all`;
  return html`<p class="message-error" id="range-note" role="status">The link's ${what}: showing ${presetLabel(presetOf(params))} instead.</p>`;
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
  const zoomed = Boolean(explicitWindow(params));
  const go = (from, to) => {
    markAsked();
    navigate(path, { range: preset, ...keep, ...windowParams(from, to) });
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
        class=${`button small ${key === preset && !zoomed ? "" : "secondary"}`}
        aria-current=${key === preset && !zoomed ? "true" : undefined}
        href=${href(path, { range: key, ...keep })} onClick=${markAsked}>${presetLabel(key)}</a>`)}
    </div>
    <div role="group" aria-label="Pan and zoom" class="buttons">
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => pan(-0.5)}>◀ Earlier</button>
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => pan(0.5)}>Later ▶</button>
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => zoom(0.5)}>Zoom in</button>
      <button type="button" class="secondary small" disabled=${!view} onClick=${() => zoom(2)}>Zoom out</button>
    </div>`;
}
