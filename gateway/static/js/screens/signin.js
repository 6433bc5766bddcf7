// Signed-out screens: sign-in (with its MFA step), registration, the
// forgotten-password request and the reset landing page of the email link.
import { api } from "../api.js";
import { html, useState } from "../lib.js";
import { navigate } from "../router.js";
import { saveLogin } from "../session.js";
import { Heading, Message, useSubmit } from "../ui.js";

export function SignIn({ notice }) {
  const [mfa, setMfa] = useState(false);
  const { answer, busy, submit } = useSubmit(async (values) => {
    const body = { email: values.email, password: values.password };
    if (values.mfa_code) body.mfa_code = values.mfa_code;
    const got = await api.post("/v1/auth/login", body);
    if (got.success && got.data.mfa_required) {
      setMfa(true);
      return { success: false, message: got.message };
    }
    if (got.success) saveLogin(got.data);
    return got;
  }, notice);
  return html`<section class="card narrow">
    <${Heading}>Sign in<//>
    <form id="login-form" onSubmit=${submit} autocomplete="on">
      <label>Email <input name="email" type="email" required autocomplete="username" /></label>
      <label>Password <input name="password" type="password" required autocomplete="current-password" /></label>
      ${mfa && html`<label>MFA code <input name="mfa_code" inputmode="numeric" autocomplete="one-time-code" required /></label>`}
      <div class="buttons">
        <button type="submit" disabled=${busy}>Log in</button>
        <a class="button secondary" href="#/register">Create an account…</a>
        <a class="button secondary" href="#/forgot-password">Forgot password…</a>
      </div>
    </form>
    <${Message} answer=${answer} />
  </section>`;
}

export function Register() {
  const { answer, busy, submit } = useSubmit(async (values, form) => {
    const body = { email: values.email, password: values.password, mfa_enabled: values.mfa_enabled === "on" };
    if (values.display_name) body.display_name = values.display_name;
    const got = await api.post("/v1/auth/register", body);
    if (got.success) form.reset();
    return got;
  });
  return html`<section class="card narrow">
    <${Heading}>Create an account<//>
    <form id="register-form" onSubmit=${submit} autocomplete="on">
      <label>Email <input name="email" type="email" required autocomplete="username" /></label>
      <label>Password <input name="password" type="password" required minlength="8" autocomplete="new-password" /></label>
      <label>Display name <input name="display_name" autocomplete="nickname" /></label>
      <label class="inline"><input name="mfa_enabled" type="checkbox" /> Turn on two-factor login</label>
      <div class="buttons">
        <button type="submit" disabled=${busy}>Register</button>
        <a class="button secondary" href="#/">Back to sign-in</a>
      </div>
    </form>
    <${Message} answer=${answer} ok=${answer && `${answer.message}. You can log in now.`} />
  </section>`;
}

export function ForgotPassword() {
  const { answer, busy, submit } = useSubmit(async (values, form) => {
    const got = await api.post("/v1/auth/forgot-password", { email: values.email });
    if (got.success) form.reset();
    return got;
  });
  return html`<section class="card narrow">
    <${Heading}>Forgot password<//>
    <p class="muted">We send a link to choose a new password to this address.</p>
    <form id="forgot-form" onSubmit=${submit}>
      <label>Email <input name="email" type="email" required autocomplete="username" /></label>
      <div class="buttons">
        <button type="submit" disabled=${busy}>Send the link</button>
        <a class="button secondary" href="#/">Back to sign-in</a>
      </div>
    </form>
    <${Message} answer=${answer} />
  </section>`;
}

// The token of the reset link arrives in the URL fragment; app.js moves it
// here and out of the address bar and history before this screen shows.
export function ResetPassword({ token, onDone }) {
  const { answer, busy, submit } = useSubmit(async (values) => {
    const got = await api.post("/v1/auth/reset-password", { token, password: values.password });
    if (got.success) {
      onDone({ success: true, message: `${got.message}. Log in with the new password.` });
      navigate("/");
    }
    return got;
  }, token ? null : { success: false, message: "This reset link holds no token; ask for a new one." });
  return html`<section class="card narrow">
    <${Heading}>Choose a new password<//>
    <p class="muted">Every session of the account ends.</p>
    <form id="reset-form" onSubmit=${submit} autocomplete="off">
      <label>New password <input name="password" type="password" required minlength="8" autocomplete="new-password" /></label>
      <div class="buttons">
        <button type="submit" disabled=${busy || !token}>Set the password</button>
        <a class="button secondary" href="#/">Cancel</a>
      </div>
    </form>
    <${Message} answer=${answer} />
  </section>`;
}
