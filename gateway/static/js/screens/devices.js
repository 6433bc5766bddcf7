// The device list: paging, filters and sorting kept in the URL (so a filtered
// page is a link and the back button undoes a filter), and registration, one
// device at a time or from a file (its module loaded when first opened).
import { api } from "../api.js";
import { html, useLayoutEffect, useRef, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { Field, formatTime, Heading, Lazy, Message, pageOf, Pager, useLoad, useSearch, useSubmit } from "../ui.js";

const IMPORT = () => import("./import.js");

export const DEVICE_TYPES = ["temperature", "pressure", "motion", "generic"];
export const DEVICE_STATUSES = ["active", "inactive", "maintenance"];
const SORTS = [
  ["-registered_at", "Newest first"],
  ["registered_at", "Oldest first"],
  ["name", "Name A–Z"],
  ["-name", "Name Z–A"],
];
const PAGE_SIZE = 20;

export function Devices({ params }) {
  const filters = {
    page: pageOf(params.page),
    type: params.type || "",
    status: params.status || "",
    search: params.search || "",
    sort: params.sort || "-registered_at",
  };
  const [answer, reload] = useLoad(
    () => api.get("/v1/devices", { ...filters, limit: PAGE_SIZE }),
    [filters.page, filters.type, filters.status, filters.search, filters.sort],
  );
  // A changed filter starts again at page 1; replace keeps typing out of the history.
  const change = (update, replace = false) => navigate("/devices", { ...filters, page: 1, ...update }, { replace });
  const [search, setSearch] = useSearch(filters.search, (text, replace) => change({ search: text }, replace));

  const devices = answer && answer.success ? answer.data.devices : [];
  return html`<section class="card wide">
    <${Heading}>Devices<//>
    <${RegisterDevice} onRegistered=${reload} />
    <form class="filters" role="search" onSubmit=${(event) => event.preventDefault()}>
      <label>Name contains <input type="search" name="search" value=${search} onInput=${(event) => setSearch(event.currentTarget.value)} /></label>
      <label>Type <select name="type" value=${filters.type} onChange=${(event) => change({ type: event.currentTarget.value })}>
        <option value="">any</option>
        ${DEVICE_TYPES.map((type) => html`<option value=${type}>${type}</option>`)}
      </select></label>
      <label>Status <select name="status" value=${filters.status} onChange=${(event) => change({ status: event.currentTarget.value })}>
        <option value="">any</option>
        ${DEVICE_STATUSES.map((status) => html`<option value=${status}>${status}</option>`)}
      </select></label>
      <label>Sort <select name="sort" value=${filters.sort} onChange=${(event) => change({ sort: event.currentTarget.value })}>
        ${SORTS.map(([value, label]) => html`<option value=${value}>${label}</option>`)}
      </select></label>
    </form>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    <div class="table-scroll">
      <table id="device-table">
        <thead><tr>
          <${SortHeader} field="name" label="Name" sort=${filters.sort} onSort=${(sort) => change({ sort })} />
          <th scope="col">Type</th><th scope="col">Status</th><th scope="col">Readings</th><th scope="col">Last seen</th>
          <${SortHeader} field="registered_at" label="Registered" sort=${filters.sort} onSort=${(sort) => change({ sort })} />
          <th scope="col">Credential</th>
        </tr></thead>
        <tbody>
          ${devices.map((device) => html`<tr key=${device.device_id}>
            <td><a href=${href(`/devices/${device.device_id}`)}>${device.name}</a></td>
            <td>${device.type}</td>
            <td><span class=${`badge status-${device.status}`}>${device.status}</span></td>
            <td>${device.readings_total}</td>
            <td>${formatTime(device.last_seen_at)}</td>
            <td>${formatTime(device.registered_at)}</td>
            <td>${device.has_credential ? "yes" : "no"}</td>
          </tr>`)}
        </tbody>
      </table>
    </div>
    ${answer && answer.success && answer.data.pagination?.total === 0 && html`<p class="muted">No device matches.</p>`}
    <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${(page) => navigate("/devices", { ...filters, page })} />
  </section>`;
}

// A column header that sorts by its field: a button (keyboard and screen
// reader users reach it), with aria-sort saying the order shown.
function SortHeader({ field, label, sort, onSort }) {
  const order = sort === field ? "ascending" : sort === `-${field}` ? "descending" : "none";
  const next = order === "ascending" ? `-${field}` : field;
  return html`<th scope="col" aria-sort=${order}>
    <button type="button" class="link" onClick=${() => onSort(next)}>${label} ${order === "ascending" ? "▲" : order === "descending" ? "▼" : ""}</button>
  </th>`;
}

// Location fields are optional: both or neither. Answers `{ location }` (undefined
// for neither), or `{ refused }`: an envelope with the error beside the empty
// field, so that "45.5" and nothing is not sent as "45.5, 0".
export function locationOf(values) {
  const { latitude, longitude } = values;
  if (latitude === "" && longitude === "") return { location: undefined };
  if (latitude === "" || longitude === "") {
    const [empty, given] = latitude === "" ? ["latitude", "longitude"] : ["longitude", "latitude"];
    return { refused: {
      success: false,
      message: "Give both latitude and longitude, or neither.",
      data: { errors: [{ field: `location.${empty}`, message: `Give the ${empty} too, or clear the ${given}` }] },
    } };
  }
  return { location: { latitude: Number(latitude), longitude: Number(longitude) } };
}

// The API's names of the location fields (an error about the latitude is
// "location.latitude"): their errors stand beside them, not under the form.
export const LOCATION_FIELDS = ["location.latitude", "location.longitude"];

// The latitude and longitude fields of a device form.
export function LocationFields({ answer, location = {} }) {
  return html`
    <${Field} label="Latitude" name="latitude" field="location.latitude" answer=${answer} type="number" step="any" min="-90" max="90" defaultValue=${location.latitude ?? ""} />
    <${Field} label="Longitude" name="longitude" field="location.longitude" answer=${answer} type="number" step="any" min="-180" max="180" defaultValue=${location.longitude ?? ""} />`;
}

// After a refused submit, focus goes to the first field marked invalid: its
// error is beside it, in view on a phone too, and read out with it. Answers
// the form's ref.
export function useInvalidFocus(answer) {
  const form = useRef(null);
  useLayoutEffect(() => {
    const invalid = answer && !answer.success && form.current && form.current.querySelector("[aria-invalid=true]");
    if (invalid) invalid.focus();
  }, [answer]);
  return form;
}

function RegisterDevice({ onRegistered }) {
  // false, true (the registration form) or "import".
  const [open, setOpen] = useState(false);
  // Opening a form moves focus into it, closing it back to the button that opened it.
  const name = useRef(null);
  const registerButton = useRef(null);
  const importButton = useRef(null);
  const was = useRef(false);
  useLayoutEffect(() => {
    if (open === true && name.current) name.current.focus();
    const back = !open && was.current && (was.current === "import" ? importButton : registerButton).current;
    if (back) back.focus();
    was.current = open;
  }, [open]);
  const { answer, setAnswer, busy, submit } = useSubmit(async (values, form) => {
    const { location, refused } = locationOf(values);
    if (refused) return refused;
    const body = { name: values.name, type: values.type };
    if (location) body.location = location;
    const got = await api.post("/v1/devices", body);
    if (got.success) {
      form.reset();
      onRegistered();
      navigate(`/devices/${got.data.device_id}`);
    }
    return got;
  });
  const form = useInvalidFocus(answer);
  if (open === "import") {
    return html`<${Lazy} load=${IMPORT} name="ImportDevices" onImported=${onRegistered} onClose=${() => setOpen(false)} />`;
  }
  if (!open) {
    return html`<div class="buttons">
      <button type="button" id="register-device" ref=${registerButton} onClick=${() => setOpen(true)}>Register a device…</button>
      <button type="button" class="secondary" ref=${importButton} onClick=${() => setOpen("import")}>Import from a file…</button>
    </div>`;
  }
  return html`<form class="inline-form" id="register-device-form" ref=${form} onSubmit=${submit}>
    <${Field} label="Name" name="name" answer=${answer} inputRef=${name} required maxlength="100" />
    <${Field} label="Type" name="type" answer=${answer}>${DEVICE_TYPES.map((type) => html`<option value=${type}>${type}</option>`)}<//>
    <${LocationFields} answer=${answer} />
    <div class="buttons">
      <button type="submit" disabled=${busy}>Register</button>
      <button type="button" class="secondary" onClick=${() => { setAnswer(null); setOpen(false); }}>Cancel</button>
    </div>
    <${Message} answer=${answer} inline=${["name", "type", ...LOCATION_FIELDS]} />
  </form>`;
}
