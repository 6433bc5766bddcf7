// Registering devices in bulk from a CSV or JSON file, with the result of
// each row: the new device, or what is wrong with the row.
import { api } from "../api.js";
import { html, useState } from "../lib.js";
import { href } from "../router.js";
import { Message, useBusy } from "../ui.js";

// The file's own name says its format; a name that does not is judged by its first character.
function formatOf(file, text) {
  if (/\.json$/i.test(file.name)) return "json";
  if (/\.csv$/i.test(file.name)) return "csv";
  return text.trimStart().startsWith("[") ? "json" : "csv";
}

export function ImportDevices({ onImported, onClose }) {
  const [answer, setAnswer] = useState(null);
  const [busy, run] = useBusy();
  const submit = (event) => {
    event.preventDefault();
    const file = event.currentTarget.elements.file.files[0];
    if (!file) return;
    run(async () => {
      const content = await file.text();
      const got = await api.post("/v1/devices:import", { format: formatOf(file, content), content });
      setAnswer(got);
      if (got.success && got.data.created) onImported();
    });
  };
  const result = answer && answer.success ? answer.data : null;
  return html`<form class="inline-form" id="import-devices-form" onSubmit=${submit}>
    <label class="file">CSV (name,type,latitude,longitude) or JSON file
      <input name="file" type="file" accept=".csv,.json,text/csv,application/json" required />
    </label>
    <div class="buttons">
      <button type="submit" disabled=${busy}>Import</button>
      <button type="button" class="secondary" onClick=${onClose}>Close</button>
    </div>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    ${result && html`<div class="import-result" role="status">
      <p class=${result.rejected ? "message-error" : "message-ok"}>${result.created} created, ${result.rejected} rejected.</p>
      <div class="table-scroll"><table id="import-results">
        <thead><tr><th scope="col">Row</th><th scope="col">Result</th></tr></thead>
        <tbody>${result.results.map((row) => html`<tr key=${row.row}>
          <td>${row.row}</td>
          <td>${row.status === "created"
            ? html`<a href=${href(`/devices/${row.device.device_id}`)}>${row.device.name}</a> created`
            : row.errors.map((error) => `${error.field}: ${error.message}`).join("; ")}</td>
        </tr>`)}</tbody>
      </table></div>
    </div>`}
  </form>`;
}
