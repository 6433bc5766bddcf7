// Two-factor login: set-up with a QR code of the otpauth URI (and the secret
// as text), the recovery codes shown once, turning it off, new recovery codes.
import { api } from "../api.js";
import { html, useEffect, useLayoutEffect, useRef, useState } from "../lib.js";
import { CopyButton, Field, formValues, Message, useBusy } from "../ui.js";

// Draws the QR code as one SVG path from the module matrix: no markup string,
// so nothing of the URI is parsed as HTML. The encoder loads only here.
function QrCode({ text }) {
  const [modules, setModules] = useState(null);
  useEffect(() => {
    let alive = true;
    import("../../vendor/uqr.js").then(({ encode }) => {
      if (alive) setModules(encode(text, { border: 2 }).data);
    });
    return () => { alive = false; };
  }, [text]);
  if (!modules) return html`<p class="muted">Drawing the QR code…</p>`;
  let path = "";
  modules.forEach((row, y) => row.forEach((dark, x) => { if (dark) path += `M${x} ${y}h1v1h-1z`; }));
  return html`<svg class="qr" viewBox=${`0 0 ${modules.length} ${modules.length}`} role="img"
    aria-label="QR code for an authenticator app" shape-rendering="crispEdges">
    <rect width="100%" height="100%" fill="#fff" /><path d=${path} fill="#000" />
  </svg>`;
}

// A heading that takes focus when it appears, so that keyboard and screen
// reader users land in what a button just showed.
function Title({ children }) {
  const ref = useRef(null);
  useLayoutEffect(() => { if (ref.current) ref.current.focus(); }, []);
  return html`<h4 tabindex="-1" ref=${ref}>${children}</h4>`;
}

function RecoveryCodes({ codes, onStored }) {
  return html`<div class="secret" id="recovery-codes">
    <${Title}>Recovery codes<//>
    <p><strong>Store these recovery codes now: they are not shown again.</strong> Each one signs you in once without the app.</p>
    <ul class="codes">${codes.map((code) => html`<li><code>${code}</code></li>`)}</ul>
    <div class="buttons">
      <${CopyButton} text=${codes.join("\n")} label="Copy the codes" />
      <button type="button" class="secondary small" onClick=${onStored}>I have stored them</button>
    </div>
  </div>`;
}

// `requested`: the user asked for two-factor login when registering and has
// not set it up yet.
export function TwoFactor({ enabled, requested, onChanged }) {
  const [setup, setSetup] = useState(null);
  const [codes, setCodes] = useState(null);
  const [answer, setAnswer] = useState(null);
  const [hint, setHint] = useState("");
  const [busy, run] = useBusy();
  const heading = useRef(null);
  const call = (path, body, then) => run(async () => {
    setHint("");
    const got = await api.post(path, body);
    setAnswer(got);
    if (got.success) then(got.data);
  });
  const start = () => call("/v1/auth/mfa/setup", {}, (data) => { setSetup(data); setCodes(null); });
  // Sends the form's code to `path`; `then` gets the answer's data on success.
  const sendCode = (form, path, then) => {
    if (!form.reportValidity()) return;
    call(path, { code: formValues(form).code }, (data) => { form.reset(); then(data); });
  };
  const enable = (event) => {
    event.preventDefault();
    sendCode(event.currentTarget, "/v1/auth/mfa/enable", (data) => { setSetup(null); setCodes(data.recovery_codes); onChanged(); });
  };
  const newCodes = (event) => sendCode(event.currentTarget.form, "/v1/auth/mfa/recovery-codes", (data) => setCodes(data.recovery_codes));
  const disable = (event) => sendCode(event.currentTarget.form, "/v1/auth/mfa/disable", () => {
    setCodes(null);
    onChanged();
    heading.current.focus();
  });
  // Enter in the code field: neither action is the obvious one, so it says so.
  const manage = (event) => {
    event.preventDefault();
    if (event.currentTarget.reportValidity()) setHint("Now choose what the code is for: “New recovery codes” or “Turn off”.");
  };
  const stored = () => { setCodes(null); setAnswer(null); heading.current.focus(); };
  return html`<section class="card">
    <h3 tabindex="-1" ref=${heading}>Two-factor login</h3>
    ${codes && html`<${RecoveryCodes} codes=${codes} onStored=${stored} key=${codes.join()} />`}
    ${!enabled && !setup && html`<p class="muted">Off. With it on, signing in also asks for a code from an authenticator app.</p>
      ${requested && html`<p id="mfa-requested">You asked for two-factor login when you registered: set it up here.</p>`}
      <div class="buttons"><button type="button" onClick=${start} disabled=${busy}>Set up two-factor login</button></div>`}
    ${!enabled && setup && html`<div class="mfa-setup">
      <${QrCode} text=${setup.otpauth_uri} />
      <div>
        <${Title}>Scan the code with an authenticator app<//>
        <p>Or enter this key in it:</p>
        <p class="copy-row"><code id="mfa-secret">${setup.secret}</code><${CopyButton} text=${setup.secret} label="Copy the key" /></p>
        <form id="mfa-enable-form" onSubmit=${enable}>
          <${Field} label="Code from the app" name="code" answer=${answer} inputmode="numeric" autocomplete="one-time-code" required />
          <div class="buttons"><button type="submit" disabled=${busy}>Turn on</button></div>
        </form>
      </div>
    </div>`}
    ${enabled && html`<p>On.</p>
      <form class="inline-form" id="mfa-manage-form" onSubmit=${manage}>
        <${Field} label="Code from the app (or a recovery code)" name="code" answer=${answer} inputmode="numeric" autocomplete="one-time-code" required />
        <div class="buttons">
          <button type="button" class="secondary" disabled=${busy} onClick=${newCodes}>New recovery codes</button>
          <button type="button" class="danger" disabled=${busy} onClick=${disable}>Turn off</button>
        </div>
      </form>`}
    ${hint && html`<p class="muted" role="status" id="mfa-hint">${hint}</p>`}
    <${Message} answer=${answer} inline=${["code"]} />
  </section>`;
}
