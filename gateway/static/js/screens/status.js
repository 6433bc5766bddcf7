// System status, asked again every few seconds while the page is open and
// the tab is shown (the API has no watch; a hidden tab asks when shown again),
// with a pause for reading. Each service with its state and why, and every
// check behind it.
import { api } from "../api.js";
import { html, useEffect, useState } from "../lib.js";
import { formatNumber, formatTime, Heading, Message, useLoad } from "../ui.js";

const REFRESH_MS = 5_000;

function uptime(seconds) {
  if (typeof seconds !== "number") return "?";
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  return hours ? `${hours} h ${minutes} min` : `${minutes} min ${Math.floor(seconds % 60)} s`;
}

export function Status() {
  const [answer, reload] = useLoad(() => api.get("/v1/system/status"), []);
  const [paused, setPaused] = useState(false);
  const [at, setAt] = useState(null);
  useEffect(() => { if (answer) setAt(new Date()); }, [answer]);
  useEffect(() => {
    if (paused) return undefined;
    const tick = () => { if (!document.hidden) reload(); };
    const timer = setInterval(tick, REFRESH_MS);
    document.addEventListener("visibilitychange", tick);
    return () => { clearInterval(timer); document.removeEventListener("visibilitychange", tick); };
  }, [reload, paused]);
  const status = answer && answer.success ? answer.data : null;
  const metrics = (status && status.metrics) || {};
  const rate = typeof metrics.error_rate === "number" ? (metrics.error_rate * 100).toFixed(2) : "?";
  const states = (status && status.service_states) || [];
  return html`<div class="stack">
    <section class="card" id="status-panel">
      <${Heading}>System status<//>
      ${answer && !answer.success && html`<${Message} answer=${answer} />`}
      ${status && html`<p id="status-summary" class=${`state-${status.status}`} role="status">Overall: ${status.status} (version ${status.version || "?"})</p>
        <div class="table-scroll"><table id="status-table">
          <thead><tr><th scope="col">Component</th><th scope="col">State</th><th scope="col">Why</th></tr></thead>
          <tbody>${states.length
            ? states.map((item) => html`<tr key=${item.service}>
                <td>${item.service}</td><td class=${`state-${item.status}`}>${item.status.replaceAll("_", " ")}</td><td>${item.message || "—"}</td></tr>`)
            : Object.entries(status.services || {}).map(([name, state]) => html`<tr key=${name}>
                <td>${name.replaceAll("_", " ")}</td><td class=${`state-${state}`}>${state || "unknown"}</td><td>—</td></tr>`)}</tbody>
        </table></div>
        <p class="muted">${metrics.active_users ?? "?"} active users · ${metrics.total_requests ?? "?"} requests · ${rate}% errors · up ${uptime(status.uptime)}</p>`}
      <div class="toolbar">
        <p class="muted">${paused ? "Paused" : `Refreshed every ${REFRESH_MS / 1000} s`}${at ? ` · last at ${formatTime(at)}` : ""}.</p>
        <button type="button" class="secondary small" aria-pressed=${paused ? "true" : "false"} onClick=${() => setPaused(!paused)}>${paused ? "Resume" : "Pause"}</button>
        <button type="button" class="secondary small" onClick=${reload}>Refresh now</button>
      </div>
    </section>
    ${status && status.dependencies && status.dependencies.length > 0 && html`<section class="card" id="status-checks">
      <h3>Checks</h3>
      <div class="table-scroll"><table>
        <thead><tr><th scope="col">Service</th><th scope="col">Check</th><th scope="col">State</th><th scope="col">Found</th><th scope="col">Took</th></tr></thead>
        <tbody>${status.dependencies.map((item) => html`<tr key=${`${item.service}/${item.name}`}>
          <td>${item.service}</td><td>${item.name}${item.optional ? " (optional)" : ""}</td>
          <td class=${`state-${item.status}`}>${item.status.replaceAll("_", " ")}</td>
          <td>${item.detail || "—"}</td><td>${formatNumber(item.latency_ms, 1)} ms</td>
        </tr>`)}</tbody>
      </table></div>
    </section>`}
  </div>`;
}
