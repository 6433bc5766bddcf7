// A stream's readings as they are stored, for a chart's live mode: read
// from the gateway's Server-Sent Events route (with fetch, through sse.js, so
// the Authorization header goes along and a dropped connection resumes with
// Last-Event-ID), and handed to the chart in batches at most ten times a
// second, whatever the rate the readings arrive at: one redraw per batch
// keeps the page responsive under a fast stream.
import { watch } from "./sse.js";

const MIN_REDRAW_MS = 100;

// `after` is the position (µs) the chart already shows, 0 for only new
// readings; `onReadings(xs, values, position)` gets seconds and values, oldest
// first, and the position (µs) after them, to resume from when watching again;
// `onState` "live" or "reconnecting". Answers { stop() }.
export function watchReadings(streamId, { after = 0, onReadings, onState }) {
  let xs = [];
  let values = [];
  let timer = 0;
  let frame = 0;
  let last = 0;
  let position = after;

  const flush = () => {
    frame = 0;
    last = performance.now();
    const batch = [xs, values];
    xs = [];
    values = [];
    onReadings(...batch, position);
  };
  // A timer keeps redraws ten a second at most; the animation frame puts the
  // redraw where the browser paints (and none while the tab is hidden).
  const schedule = () => {
    if (timer || frame) return;
    timer = setTimeout(() => {
      timer = 0;
      frame = requestAnimationFrame(flush);
    }, Math.max(0, MIN_REDRAW_MS - (performance.now() - last)));
  };

  const query = after ? `?last_event_id=${after}` : "";
  const source = watch(`/v1/streams/${encodeURIComponent(streamId)}/readings:watch${query}`, {
    onState,
    onEvent(type, event) {
      if (type !== "message") return;
      // int64 fields arrive as JSON strings; µs fit a double exactly.
      for (let i = 0; i < event.timestamps.length; i += 1) {
        xs.push(Number(event.timestamps[i]) / 1e6);
        values.push(event.values[i]);
      }
      position = Number(event.event_id) || position;
      schedule();
    },
  });
  return {
    stop() {
      source.stop();
      clearTimeout(timer);
      cancelAnimationFrame(frame);
    },
  };
}

// The position (µs) of an RFC 3339 time as the gateway writes it ("…:05.123456Z"):
// Date.parse keeps milliseconds only, so the fraction is read here.
export function micros(rfc3339) {
  const [whole, fraction = ""] = rfc3339.replace("Z", "").split(".");
  return Date.parse(`${whole}Z`) * 1000 + Number(fraction.padEnd(6, "0").slice(0, 6));
}
