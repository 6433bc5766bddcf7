// Registering devices in bulk from a CSV or JSON file, with the result of
// each row: the new device, or what is wrong with the row.
import { api } from "../api.js";
import { html, useLayoutEffect, useRef, useState } from "../lib.js";
import { href } from "../router.js";
import { Message, useBusy } from "../ui.js";

// The file's own name says its format; a name that does not is judged by its first character.
function formatOf(file, text) {
  if (/\.json$/i.test(file.name)) return "json";
  if (/\.csv$/i.test(file.name)) return "csv";
  return text.trimStart().startsWith("[") ? "json" : "csv";
}

// The line of the file each record of a CSV starts on, read as the devices
// service reads it (Python's csv): a quoted value may hold line breaks, and
// blank lines are no record. The first record is the header.
function csvRecordLines(text) {
  const starts = [];
  let line = 1;
  let start = 1;
  let empty = true;
  let state = "start";
  for (const char of text) {
    if (char === "\n" && state !== "quoted") {
      if (!empty) starts.push(start);
      line += 1;
      start = line;
      empty = true;
      state = "start";
      continue;
    }
    if (char === "\n") line += 1;
    if (char === "\r" && state !== "quoted") continue;
    empty = false;
    if (state === "quoted") state = char === "\"" ? "quote" : "quoted";
    else if (char === ",") state = "start";
    else if (char === "\"" && state !== "field") state = "quoted";
    else state = "field";
  }
  if (!empty) starts.push(start);
  return starts;
}

// The API numbers a CSV's data rows from 1 after the header, and a JSON
// array's items from 1. A CSV's row is also given as its line in the file
// (the header is line 1), as the readings' error log counts rows.
function rowName(row, format, lines) {
  if (format === "json") return `Item ${row}`;
  return lines[row] ? `Data row ${row} (line ${lines[row]})` : `Data row ${row}`;
}

export function ImportDevices({ onImported, onClose }) {
  const [answer, setAnswer] = useState(null);
  // The format and the CSV's record lines of the file the answer is about.
  const [read, setRead] = useState({ format: "csv", lines: [] });
  const [busy, run] = useBusy();
  // Opened by a button that is gone now: focus goes to the file field.
  const picker = useRef(null);
  useLayoutEffect(() => { if (picker.current) picker.current.focus(); }, []);
  const submit = (event) => {
    event.preventDefault();
    const file = event.currentTarget.elements.file.files[0];
    if (!file) return;
    run(async () => {
      const content = await file.text();
      const format = formatOf(file, content);
      const got = await api.post("/v1/devices:import", { format, content });
      setRead({ format, lines: format === "csv" ? csvRecordLines(content) : [] });
      setAnswer(got);
      if (got.success && got.data.created) onImported();
    });
  };
  const result = answer && answer.success ? answer.data : null;
  return html`<form class="inline-form" id="import-devices-form" onSubmit=${submit}>
    <label class="file">CSV (name,type,latitude,longitude) or JSON file
      <input name="file" ref=${picker} type="file" accept=".csv,.json,text/csv,application/json" required />
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
          <td>${rowName(row.row, read.format, read.lines)}</td>
          <td class="wrap">${row.status === "created"
            ? html`<a href=${href(`/devices/${row.device.device_id}`)}>${row.device.name}</a> created`
            : row.errors.map((error) => `${error.field}: ${error.message}`).join("; ")}</td>
        </tr>`)}</tbody>
      </table></div>
    </div>`}
  </form>`;
}
