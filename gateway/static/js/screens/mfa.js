// Two-factor login: set-up with a QR code of the otpauth URI (and the secret
// as text), the recovery codes shown once, turning it off, new recovery codes.
import { api } from "../api.js";
import { html, useEffect, useState } from "../lib.js";
import { CopyButton, formValues, Message, useBusy } from "../ui.js";

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

function RecoveryCodes({ codes }) {
  return html`<div class="secret" id="recovery-codes">
    <p><strong>Store these recovery codes now: they are not shown again.</strong> Each one signs you in once without the app.</p>
    <ul class="codes">${codes.map((code) => html`<li><code>${code}</code></li>`)}</ul>
    <${CopyButton} text=${codes.join("\n")} label="Copy the codes" />
  </div>`;
}

export function TwoFactor({ enabled, onChanged }) {
  const [setup, setSetup] = useState(null);
  const [codes, setCodes] = useState(null);
  const [answer, setAnswer] = useState(null);
  const [busy, run] = useBusy();
  const call = (path, body, then) => run(async () => {
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
  const disable = (event) => sendCode(event.currentTarget.form, "/v1/auth/mfa/disable", () => { setCodes(null); onChanged(); });
  return html`<section class="card">
    <h3>Two-factor login</h3>
    ${codes && html`<${RecoveryCodes} codes=${codes} />`}
    ${!enabled && !setup && html`<p class="muted">Off. With it on, signing in also asks for a code from an authenticator app.</p>
      <div class="buttons"><button type="button" onClick=${start} disabled=${busy}>Set up two-factor login</button></div>`}
    ${!enabled && setup && html`<div class="mfa-setup">
      <${QrCode} text=${setup.otpauth_uri} />
      <div>
        <p>Scan the code with an authenticator app, or enter this key in it:</p>
        <p class="copy-row"><code id="mfa-secret">${setup.secret}</code><${CopyButton} text=${setup.secret} label="Copy the key" /></p>
        <form id="mfa-enable-form" onSubmit=${enable}>
          <label>Code from the app <input name="code" inputmode="numeric" autocomplete="one-time-code" required /></label>
          <div class="buttons"><button type="submit" disabled=${busy}>Turn on</button></div>
        </form>
      </div>
    </div>`}
    ${enabled && html`<p>On.</p>
      <form class="inline-form" id="mfa-manage-form" onSubmit=${(event) => event.preventDefault()}>
        <label>Code from the app (or a recovery code)
          <input name="code" inputmode="numeric" autocomplete="one-time-code" required /></label>
        <div class="buttons">
          <button type="button" class="secondary" disabled=${busy} onClick=${newCodes}>New recovery codes</button>
          <button type="button" class="danger" disabled=${busy} onClick=${disable}>Turn off</button>
        </div>
      </form>`}
    <${Message} answer=${answer} />
  </section>`;
}
