// System status, asked again every few seconds while the page is open.
import { api } from "../api.js";
import { html, useEffect } from "../lib.js";
import { formatTime, Heading, Message, useLoad } from "../ui.js";

const REFRESH_MS = 5_000;

export function Status() {
  const [answer, reload] = useLoad(() => api.get("/v1/system/status"), []);
  useEffect(() => {
    const timer = setInterval(reload, REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload]);
  const status = answer && answer.success ? answer.data : null;
  const metrics = (status && status.metrics) || {};
  const rate = typeof metrics.error_rate === "number" ? (metrics.error_rate * 100).toFixed(2) : "?";
  return html`<section class="card" id="status-panel">
    <${Heading}>System status<//>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    ${status && html`<p id="status-summary" class=${`state-${status.status}`}>Overall: ${status.status} (version ${status.version || "?"})</p>
      <table id="status-table">
        <thead><tr><th scope="col">Component</th><th scope="col">State</th></tr></thead>
        <tbody>${Object.entries(status.services || {}).map(([name, state]) => html`<tr key=${name}>
          <td>${name.replaceAll("_", " ")}</td><td class=${`state-${state}`}>${state || "unknown"}</td></tr>`)}</tbody>
      </table>
      <p class="muted">${metrics.active_users ?? "?"} active users · ${metrics.total_requests ?? "?"} requests · ${rate}% errors</p>`}
    <p class="muted">Refreshed every ${REFRESH_MS / 1000} s${answer ? ` · last at ${formatTime(new Date())}` : ""}.</p>
  </section>`;
}
