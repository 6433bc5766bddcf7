// Importing readings from files, in batches (seed 002): the user's batches,
// and one batch: several files dropped or picked at once, each uploaded with
// its own progress bar (XMLHttpRequest's upload events), its status followed
// until the import ends, and the batch's error log by row and column, paged.
import { api, upload } from "../api.js";
import { html, useEffect, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { Confirm, formatTime, Heading, Message, pageOf, Pager, useBusy, useLoad } from "../ui.js";

const FORMATS = ["csv", "json", "xlsx"];
// A file's import has ended in one of these; before, its status is asked again.
const FINAL = new Set(["COMPLETED", "FAILED"]);
const MOVING = new Set(["UPLOADING", "UPLOADED", "PROCESSING"]);
const POLL_MS = 1_000;
const ERRORS_PER_PAGE = 20;

// The user's devices by name, for the device a batch's rows belong to.
function useDevices() {
  const [answer] = useLoad(() => api.get("/v1/devices", { limit: 100, sort: "name" }), []);
  return answer && answer.success ? answer.data.devices : [];
}

function DeviceSelect({ devices, value, onChange, label }) {
  return html`<label>${label}
    <select name="device_id" value=${value} onChange=${(event) => onChange(event.currentTarget.value)}>
      <option value="">none (the rows name it)</option>
      ${devices.map((device) => html`<option value=${device.device_id}>${device.name}</option>`)}
    </select></label>`;
}

export function Imports({ params }) {
  const page = pageOf(params.page);
  const [answer] = useLoad(() => api.get("/v1/batches", { page, limit: 20 }), [page]);
  const devices = useDevices();
  // A device's page links here with it chosen.
  const [deviceId, setDeviceId] = useState(params.device_id || "");
  const [created, setCreated] = useState(null);
  const [busy, run] = useBusy();
  const start = (event) => {
    event.preventDefault();
    run(async () => {
      const got = await api.post("/v1/batches", deviceId ? { device_id: deviceId } : {});
      setCreated(got);
      if (got.success) navigate(`/imports/${got.data.batch_id}`);
    });
  };
  const batches = answer && answer.success ? answer.data.batches : [];
  return html`<section class="card">
    <${Heading}>Imports<//>
    <p class="muted">Readings from CSV, JSON or XLSX files with a <code>timestamp</code> and a <code>value</code> column
      (and optionally <code>metric_name</code> and <code>device_id</code>), several files to a batch.</p>
    <form class="inline-form" id="new-batch-form" onSubmit=${start}>
      <${DeviceSelect} devices=${devices} value=${deviceId} onChange=${setDeviceId} label="Device of the batch's rows" />
      <div class="buttons"><button type="submit" disabled=${busy}>Start a batch</button></div>
      <${Message} answer=${created && !created.success ? created : null} />
    </form>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    ${answer && answer.success && (batches.length === 0
      ? html`<p class="muted">No batch yet.</p>`
      : html`<div class="table-scroll"><table id="batch-table">
        <thead><tr><th scope="col">Started</th><th scope="col">Status</th><th scope="col">Files</th><th scope="col">Errors</th></tr></thead>
        <tbody>${batches.map((batch) => html`<tr key=${batch.batch_id}>
          <td><a href=${href(`/imports/${batch.batch_id}`)}>${formatTime(batch.started_at)}</a></td>
          <td><span class=${`badge batch-${batch.status.toLowerCase()}`}>${batch.status}</span></td>
          <td>${batch.uploaded_files_count}</td>
          <td>${batch.error_count}</td>
        </tr>`)}</tbody>
      </table></div>`)}
    ${answer && answer.success && html`<${Pager} pagination=${answer.data.pagination} onPage=${(next) => navigate("/imports", { page: next })} />`}
  </section>`;
}

function formatOf(name) {
  const match = /\.([^.]+)$/.exec(name);
  return match ? match[1].toLowerCase() : "";
}

function kib(bytes) {
  return bytes < 1024 ? `${bytes} B` : `${(bytes / 1024).toFixed(1)} KB`;
}

export function ImportBatch({ batchId, params }) {
  const errorsPage = pageOf(params.page);
  const base = `/v1/batches/${encodeURIComponent(batchId)}`;
  const [batch, reloadBatch] = useLoad(() => api.get(base), [base]);
  const [files, reloadFiles] = useLoad(() => api.get(`${base}/files`), [base]);
  const [errors, reloadErrors] = useLoad(() => api.get(`${base}/errors`, { page: errorsPage, limit: ERRORS_PER_PAGE }), [base, errorsPage]);
  // This tab's uploads, by a key of their own (a file has no id before it is announced).
  const [uploads, setUploads] = useState([]);
  const change = (key, update) => setUploads((old) => old.map((item) => (item.key === key ? { ...item, ...update } : item)));
  const stopper = useRef(new AbortController());
  useEffect(() => () => stopper.current.abort(), []);
  const devices = useDevices();
  const [deviceId, setDeviceId] = useState(null);
  const [metric, setMetric] = useState("temperature");
  const [dragging, setDragging] = useState(false);

  const info = batch && batch.success ? batch.data : null;
  const device = deviceId ?? (info ? info.device_id : "");
  const known = files && files.success ? files.data.files : [];

  const send = async (item, file) => {
    const announced = await api.post("/v1/uploads", {
      batch_id: batchId, device_id: device, metric_name: metric, filename: file.name, format: formatOf(file.name),
    });
    if (!announced.success) { change(item.key, { answer: announced, done: true }); return; }
    change(item.key, { fileId: announced.data.file_id });
    reloadFiles();
    const answer = await upload(announced.data.upload_url, file, {
      contentType: announced.data.fields["content-type"],
      onProgress: (sent, total) => change(item.key, { sent, total }),
      signal: stopper.current.signal,
    });
    // The bar shows only what the upload events said went (the last one says all did).
    change(item.key, { answer: answer.success ? null : answer, done: true });
    reloadFiles();
  };
  const start = (list) => {
    const chosen = [...list];
    if (!chosen.length) return;
    const items = chosen.map((file, index) => ({
      key: `${Date.now()}-${index}-${file.name}`, name: file.name, sent: 0, total: file.size, fileId: "", answer: null, done: false,
    }));
    setUploads((old) => [...old, ...items]);
    chosen.forEach((file, index) => send(items[index], file));
  };
  const drop = (event) => {
    event.preventDefault();
    setDragging(false);
    if (event.dataTransfer) start(event.dataTransfer.files);
  };
  const picked = (event) => {
    start(event.currentTarget.files);
    event.currentTarget.value = "";
  };

  // While an upload runs or a file is being imported, the files are asked again;
  // once a file ends, the batch and its error log are too.
  const moving = uploads.some((item) => !item.done) || known.some((file) => MOVING.has(file.status));
  useEffect(() => {
    if (!moving) return undefined;
    const timer = setInterval(reloadFiles, POLL_MS);
    return () => clearInterval(timer);
  }, [moving, reloadFiles]);
  const ended = known.filter((file) => FINAL.has(file.status)).map((file) => file.file_id).join(",");
  useEffect(() => { if (ended) { reloadBatch(); reloadErrors(); } }, [ended]);

  const act = async (verb) => {
    const got = await api.post(`${base}/${verb}`, {});
    await reloadBatch();
    return got;
  };
  const rows = [
    ...known.map((file) => ({ file, local: uploads.find((item) => item.fileId === file.file_id) })),
    ...uploads.filter((item) => !item.fileId || !known.some((file) => file.file_id === item.fileId)).map((local) => ({ file: null, local })),
  ];
  // Said to screen readers as it changes: how far this tab's files got.
  const sending = uploads.filter((item) => !item.done).length;
  const importing = known.filter((file) => MOVING.has(file.status)).length;
  const progress = sending ? `Uploading ${sending} of ${uploads.length} files…`
    : importing ? `Importing ${importing} ${importing === 1 ? "file" : "files"}…`
      : uploads.length ? "Every file has been processed." : "";

  if (batch && !batch.success) {
    return html`<section class="card"><${Heading}>Import batch<//><${Message} answer=${batch} />
      <p><a href="#/imports">All imports</a></p></section>`;
  }
  return html`<div class="stack">
    <section class="card">
      <p class="crumbs"><a href="#/imports">Imports</a></p>
      <${Heading}>Import batch<//>
      ${info && html`<dl class="facts">
        <dt>Status</dt><dd><span class=${`badge batch-${info.status.toLowerCase()}`} id="batch-status">${info.status}</span></dd>
        <dt>Started</dt><dd>${formatTime(info.started_at)}</dd>
        <dt>${info.status === "ACTIVE" ? "Expires" : "Ended"}</dt><dd>${formatTime(info.status === "ACTIVE" ? info.expires_at : info.completed_at)}</dd>
        <dt>Files uploaded</dt><dd>${info.uploaded_files_count} (${kib(Number(info.total_size))})</dd>
        <dt>Errors</dt><dd>${info.error_count}</dd>
      </dl>`}
      ${info && info.status === "ACTIVE" && html`<div class="buttons">
        <${Confirm} label="Complete the batch" question="Complete the batch? It will take no more files." yes="Complete" danger=${false} onConfirm=${() => act("complete")} />
        <${Confirm} label="Cancel the batch" question="Cancel the batch? It will take no more files." yes="Cancel the batch" no="Keep it" onConfirm=${() => act("cancel")} />
      </div>`}
    </section>
    ${info && info.status === "ACTIVE" && html`<section class="card">
      <h3>Add files</h3>
      <form class="inline-form" id="upload-form" onSubmit=${(event) => event.preventDefault()}>
        <${DeviceSelect} devices=${devices} value=${device} onChange=${setDeviceId} label="Device" />
        <label>Metric (of rows without a metric_name column)
          <input name="metric_name" value=${metric} onInput=${(event) => setMetric(event.currentTarget.value)} />
        </label>
        <label class=${dragging ? "drop-zone dragging" : "drop-zone"} id="drop-zone"
          onDragOver=${(event) => { event.preventDefault(); setDragging(true); }}
          onDragLeave=${() => setDragging(false)} onDrop=${drop}>
          <span>Drop CSV, JSON or XLSX files here, or choose them</span>
          <input type="file" name="files" multiple accept=${FORMATS.map((format) => `.${format}`).join(",")} onChange=${picked} />
        </label>
      </form>
    </section>`}
    <section class="card">
      <h3>Files</h3>
      <p class="muted" role="status" id="import-progress">${progress}</p>
      ${rows.length === 0
        ? html`<p class="muted">No file yet.</p>`
        : html`<div class="table-scroll"><table id="file-table">
          <thead><tr><th scope="col">File</th><th scope="col">Upload</th><th scope="col">Status</th><th scope="col">Rows</th><th scope="col">Result</th></tr></thead>
          <tbody>${rows.map(({ file, local }) => html`<${FileRow} key=${file ? file.file_id : local.key} file=${file} local=${local} />`)}</tbody>
        </table></div>`}
    </section>
    <section class="card">
      <h3>Error log</h3>
      ${errors && !errors.success && html`<${Message} answer=${errors} />`}
      ${errors && errors.success && (errors.data.content.length === 0
        ? html`<p class="muted">No error.</p>`
        : html`<div class="table-scroll"><table id="error-log">
          <thead><tr><th scope="col">File</th><th scope="col">Row</th><th scope="col">Column</th><th scope="col">Severity</th><th scope="col">Message</th></tr></thead>
          <tbody>${errors.data.content.map((entry) => html`<tr key=${entry.id}>
            <td>${entry.metadata ? entry.metadata.filename : ""}</td>
            <td>${entry.metadata && entry.metadata.row != null ? entry.metadata.row : "—"}</td>
            <td>${(entry.metadata && entry.metadata.column) || "—"}</td>
            <td><span class=${`badge severity-${entry.severity.toLowerCase()}`}>${entry.severity}</span></td>
            <td class="wrap">${entry.message}</td>
          </tr>`)}</tbody>
        </table></div>`)}
      ${errors && errors.success && html`<${Pager} pagination=${errors.data.pagination} onPage=${(next) => navigate(`/imports/${batchId}`, { page: next })} />`}
    </section>
  </div>`;
}

function FileRow({ file, local }) {
  const name = file ? file.filename : local.name;
  const size = file && file.file_size ? file.file_size : local ? local.total : 0;
  // This tab's upload shows its own progress; a file uploaded before shows its status's.
  const sent = local ? local.sent : file && file.status !== "PENDING" ? size : 0;
  const status = file ? file.status : local.answer ? "REFUSED" : "ANNOUNCING";
  const progress = file ? file.progress : null;
  const failure = local && local.answer;
  return html`<tr>
    <td>${name}</td>
    <td><progress max=${size || 1} value=${Math.min(sent, size || 1)} aria-label=${`Upload of ${name}`}>${size ? Math.round((100 * sent) / size) : 0} %</progress>
      <span class="muted progress-text">${kib(sent)} of ${kib(size)}</span></td>
    <td><span class=${`badge upload-${status.toLowerCase()}`} data-file=${name}>${status}</span></td>
    <td>${progress ? `${progress.rows_imported} imported, ${progress.rows_rejected} rejected` : "—"}</td>
    <td class="wrap">${failure ? html`<${Message} answer=${failure} />` : file ? file.message : "Announcing the file…"}</td>
  </tr>`;
}
