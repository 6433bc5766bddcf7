// Small pieces every screen uses: an envelope's message, a pager, times,
// a copy button, and a hook that loads from the gateway.
import { html, useCallback, useEffect, useLayoutEffect, useRef, useState } from "./lib.js";

// Shows an answer's message, and its field errors on failure. role=status so
// screen readers announce it without moving focus.
// `inline` names the fields whose errors a <FieldError> shows beside them.
export function Message({ answer, ok, inline = [] }) {
  if (!answer) return null;
  const errors = fieldErrors(answer).filter((item) => !inline.includes(item.field));
  return html`<div class="message" role="status" aria-live="polite">
    <p class=${answer.success ? "message-ok" : "message-error"}>${answer.success ? ok || answer.message : answer.message}</p>
    ${!answer.success && errors.length > 0 && html`<ul>
      ${errors.map((item) => html`<li>${item.field ? `${item.field}: ${item.message}` : item.message}</li>`)}
    </ul>`}
  </div>`;
}

function fieldErrors(answer) {
  return (answer && !answer.success && answer.data && answer.data.errors) || [];
}

// The envelope's errors about one field, shown beside it; the field itself
// takes ...${errorProps(answer, field)} so that it is marked invalid and
// described by them.
export function FieldError({ answer, field }) {
  const errors = fieldErrors(answer).filter((item) => item.field === field);
  if (!errors.length) return null;
  return html`<span class="field-error" id=${errorId(field)}>${errors.map((item) => item.message).join("; ")}</span>`;
}

function errorId(field) {
  return `error-${field.replaceAll(/[^\w-]/g, "-")}`;
}

export function errorProps(answer, field) {
  return fieldErrors(answer).some((item) => item.field === field)
    ? { "aria-invalid": "true", "aria-describedby": errorId(field) }
    : {};
}

// A field's attributes for its errors from the envelope (errorProps), and
// for `hint`, the id of a text that describes it too.
export function described(answer, field, hint) {
  const invalid = errorProps(answer, field);
  const ids = [invalid["aria-describedby"], hint].filter(Boolean).join(" ");
  return { ...invalid, "aria-describedby": ids || undefined };
}

// A labelled input, or a select when given its options as children, with the
// envelope's errors about `field` (the API's name for it; `name` unless told)
// beside it, marked invalid and described by them (and by the text of id
// `hint`). `inputRef` is the control's ref.
export function Field({ label, name, field = name, answer, hint, inputRef, children, ...props }) {
  const attributes = described(answer, field, hint);
  return html`<label>${label} ${children
    ? html`<select name=${name} ref=${inputRef} ...${props} ...${attributes}>${children}</select>`
    : html`<input name=${name} ref=${inputRef} ...${props} ...${attributes} />`}
    <${FieldError} answer=${answer} field=${field} /></label>`;
}

// A dangerous action asked twice: the button is replaced by the question, with
// focus on its safe answer; Escape or "Cancel" puts the button back, with focus
// on it again (and after "yes", when the button is still there), so a keyboard
// user is not sent back to the top of the page. `onConfirm` runs on "yes";
// answers its envelope. `name` is the button's accessible name when its
// visible label needs context; `disabled` keeps the button from asking.
export function Confirm({ label, name, yes, no = "Cancel", question, onConfirm, danger = true, id, disabled = false }) {
  const [asking, setAsking] = useState(false);
  const keep = useRef(null);
  const trigger = useRef(null);
  const returning = useRef(false);
  useLayoutEffect(() => {
    if (asking && keep.current) keep.current.focus();
    if (!asking && returning.current) {
      returning.current = false;
      if (trigger.current && trigger.current.isConnected) trigger.current.focus();
    }
  }, [asking]);
  const [busy, run] = useBusy();
  const close = () => { returning.current = true; setAsking(false); };
  const confirm = () => run(async () => { await onConfirm(); close(); });
  if (!asking) {
    return html`<button type="button" id=${id} ref=${trigger} aria-label=${name} disabled=${disabled} class=${danger ? "danger small" : "secondary small"} onClick=${() => setAsking(true)}>${label}</button>`;
  }
  const onKeyDown = (event) => { if (event.key === "Escape") { event.stopPropagation(); close(); } };
  return html`<span class="confirm" role="group" aria-label=${question} onKeyDown=${onKeyDown}>
    <span>${question}</span>
    <button type="button" class=${danger ? "danger small" : "small"} disabled=${busy} onClick=${confirm}>${yes}</button>
    <button type="button" class="secondary small" ref=${keep} onClick=${close}>${no}</button>
  </span>`;
}

// Loads with `fetcher` whenever a dependency changes; answers the latest
// envelope and a reload function. An answer for stale dependencies is dropped.
export function useLoad(fetcher, deps) {
  const [answer, setAnswer] = useState(null);
  const generation = useRef(0);
  const load = useCallback(async () => {
    const mine = ++generation.current;
    const got = await fetcher();
    if (mine === generation.current) setAnswer(got);
  }, deps);
  useEffect(() => { load(); }, [load]);
  return [answer, load];
}

// A search box whose text reaches the URL once typing pauses: the first
// change of a search adds a history entry and the rest replace it, so Back
// undoes a whole search (to the list before it) rather than each letter; Back
// and Forward change the URL under the box, and the box shows it.
// `onSearch(text, replace)` is called with replace false the first time.
const SEARCH_DELAY_MS = 300;

export function useSearch(value, onSearch) {
  const [search, setSearch] = useState(value);
  // The URL's value this box last wrote: a different one came from Back, Forward or a link,
  // and the next search starts a new history entry.
  const wrote = useRef(null);
  useEffect(() => setSearch(value), [value]);
  useEffect(() => {
    if (search === value) return undefined;
    const timer = setTimeout(() => {
      const replace = wrote.current !== null && wrote.current === value;
      wrote.current = search;
      onSearch(search, replace);
    }, SEARCH_DELAY_MS);
    return () => clearTimeout(timer);
  }, [search]);
  return [search, setSearch];
}

// A page number from the URL: a whole number from 1, else 1 (so "?page=abc" or
// "?page=-1" shows the first page instead of asking the API for page NaN).
export function pageOf(value) {
  const page = Number(value);
  return Number.isInteger(page) && page >= 1 && page <= 2 ** 31 - 1 ? page : 1; // the API's int32
}

export function Pager({ pagination, onPage }) {
  if (pagination && pagination.total > 0 && pagination.page > pagination.total_pages) {
    const last = Math.max(pagination.total_pages, 1);
    return html`<nav class="pager" aria-label="Pages">
      <span>Page ${pagination.page} is past the last page (${last}) · ${pagination.total} in all</span>
      <button type="button" class="secondary small" onClick=${() => onPage(last)}>Go to page ${last}</button>
    </nav>`;
  }
  if (!pagination || !pagination.total_pages || pagination.total_pages <= 1) {
    return pagination ? html`<p class="muted">${pagination.total ?? 0} in all</p>` : null;
  }
  const { page, total_pages: pages, total } = pagination;
  return html`<nav class="pager" aria-label="Pages">
    <button type="button" class="secondary small" disabled=${page <= 1} onClick=${() => onPage(page - 1)}>Previous</button>
    <span>Page ${page} of ${pages} · ${total} in all</span>
    <button type="button" class="secondary small" disabled=${page >= pages} onClick=${() => onPage(page + 1)}>Next</button>
  </nav>`;
}

export function formatTime(value) {
  if (!value) return "—";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function formatNumber(value, digits = 3) {
  return typeof value === "number" && Number.isFinite(value) ? Number(value.toFixed(digits)).toString() : "—";
}

export function CopyButton({ text, label = "Copy" }) {
  const [done, setDone] = useState(false);
  // A new text (a rotated secret) is not copied yet, whatever the button said before.
  useEffect(() => setDone(false), [text]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
    } catch {
      setDone(false);
    }
  };
  return html`<button type="button" class="secondary small" onClick=${copy}>${done ? "Copied" : label}</button>`;
}

// The values of a form's named fields.
export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries());
}

// Runs `work` with the submit button disabled, so a double click sends once.
export function useBusy() {
  const [busy, setBusy] = useState(false);
  const run = async (work) => {
    setBusy(true);
    try { return await work(); } finally { setBusy(false); }
  };
  return [busy, run];
}

// A form's submit handler: the default navigation prevented, the submit
// button kept disabled while `send(values, form)` runs, and the envelope it
// answers kept for <Message>.
export function useSubmit(send, initial = null) {
  const [answer, setAnswer] = useState(initial);
  const [busy, run] = useBusy();
  const submit = (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    run(async () => setAnswer(await send(formValues(form), form)));
  };
  return { answer, setAnswer, busy, submit };
}

// A component of a module imported on first use: `load` (a constant function
// calling import()) and the export's `name`; other props go to the component.
// "Loading…" meanwhile, or nothing when `quiet`.
// The module is looked up by `load` at every render: Preact keeps one Lazy
// instance when the route changes from one lazy screen to another (same place,
// same component), so a module held in state would be the previous screen's.
const loaded = new Map();
export function Lazy({ load, name, quiet = false, ...props }) {
  const [, setLoads] = useState(0);
  const [failed, setFailed] = useState(null);
  const module = loaded.get(load);
  useEffect(() => {
    if (loaded.has(load)) return;
    let current = true;
    load().then(
      (got) => { loaded.set(load, got); if (current) setLoads((n) => n + 1); },
      () => { if (current) setFailed(load); },
    );
    return () => { current = false; };
  }, [load]);
  if (failed === load) return quiet ? null : html`<p class="message-error">This screen could not be loaded; reload the page.</p>`;
  if (!module) return quiet ? null : html`<p class="loading">Loading…</p>`;
  const Component = module[name];
  return html`<${Component} ...${props} />`;
}

// Moves focus to a screen's heading when it opens, so keyboard and screen
// reader users land on the new page rather than on the link they left.
export function Heading({ children }) {
  const ref = useRef(null);
  useLayoutEffect(() => { if (ref.current) ref.current.focus(); }, []);
  return html`<h2 tabindex="-1" ref=${ref}>${children}</h2>`;
}

// What a screen reader hears of a live list (newest first): the new items
// together, at most once every ANNOUNCE_MS and a second after the first (so
// that names looked up meanwhile are in), as "New anomaly: …" or "3 new
// anomalies; the latest: …". A live region around the list itself would read
// every item, and every name filled in later, as it came: a burst would drown
// the page. `idOf` and `describe` read an item; `nouns` are [one, many].
const ANNOUNCE_MS = 5_000;
const FIRST_ANNOUNCE_MS = 1_000;

export function LiveSummary({ items, idOf, describe, nouns, id }) {
  const [said, setSaid] = useState("");
  // The newest item already counted (announced, or there before any announcement).
  const counted = useRef(null);
  const last = useRef(0);
  const timer = useRef(0);
  const latest = useRef({ items, describe });
  latest.current = { items, describe };
  useEffect(() => () => clearTimeout(timer.current), []);
  useEffect(() => {
    if (!items.length || timer.current || idOf(items[0]) === counted.current) return;
    const flush = () => {
      timer.current = 0;
      last.current = Date.now();
      const { items: now, describe: say } = latest.current;
      const at = now.findIndex((item) => idOf(item) === counted.current);
      const count = at < 0 ? now.length : at;
      // The list keeps its newest few: past them, the one counted last has left it.
      const more = at < 0 && counted.current !== null ? " or more" : "";
      counted.current = idOf(now[0]);
      if (!count) return;
      setSaid(count === 1 ? `New ${nouns[0]}: ${say(now[0])}` : `${count}${more} new ${nouns[1]}; the latest: ${say(now[0])}`);
    };
    timer.current = setTimeout(flush, Math.max(FIRST_ANNOUNCE_MS, last.current + ANNOUNCE_MS - Date.now()));
  }, [items]);
  return html`<p class="visually-hidden" role="status" id=${id}>${said}</p>`;
}
