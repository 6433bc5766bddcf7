// Signed-out screens: sign-in (with its MFA step), registration, the
// forgotten-password request and the reset landing page of the email link.
import { api, request } from "../api.js";
import { html, useLayoutEffect, useRef, useState } from "../lib.js";
import { navigate } from "../router.js";
import { saveLogin } from "../session.js";
import { Field, Heading, Message, useSubmit } from "../ui.js";

// What auth asks of a new password (protos/iot/auth/v1/auth.proto, RegisterRequest).
const PASSWORD_RULES = "At least 8 characters, with an uppercase and a lowercase letter, a digit and a special character.";
const MFA_PROMPT = "Enter the code from your authenticator app or a recovery code";

export function SignIn({ notice }) {
  // The instruction of the MFA step once the server asks for a code: an
  // instruction, not an error, and focus goes to the new field.
  const [mfa, setMfa] = useState("");
  const code = useRef(null);
  useLayoutEffect(() => { if (mfa && code.current) code.current.focus(); }, [mfa]);
  const { answer, busy, submit } = useSubmit(async (values) => {
    const body = { email: values.email, password: values.password };
    if (values.mfa_code) body.mfa_code = values.mfa_code;
    const got = await api.post("/v1/auth/login", body);
    if (got.success && got.data.mfa_required) {
      setMfa(got.message || MFA_PROMPT);
      return null;
    }
    if (got.success) saveLogin(got.data);
    return got;
  }, notice);
  return html`<section class="card narrow">
    <${Heading}>Sign in<//>
    <form id="login-form" onSubmit=${submit} autocomplete="on">
      <label>Email <input name="email" type="email" required autocomplete="username" /></label>
      <label>Password <input name="password" type="password" required autocomplete="current-password" /></label>
      ${mfa && html`<p class="muted" id="mfa-prompt">${mfa}</p>
        <label>MFA code <input name="mfa_code" ref=${code} inputmode="numeric" autocomplete="one-time-code" required aria-describedby="mfa-prompt" /></label>`}
      <div class="buttons">
        <button type="submit" disabled=${busy}>Log in</button>
        <a class="button secondary" href="#/register">Create an account…</a>
        <a class="button secondary" href="#/forgot-password">Forgot password…</a>
      </div>
    </form>
    <${Message} answer=${answer} />
  </section>`;
}

// A taken email is refused with no field named (a 409): it is about the email
// field all the same, so it is shown beside it too.
function emailTaken(got) {
  if (got.success || !got.error || got.error.error_code !== "EMAIL_TAKEN") return got;
  const errors = (got.data && got.data.errors) || [];
  if (errors.length) return got;
  return { ...got, data: { ...got.data, errors: [{ field: "email", message: got.message }] } };
}

const REGISTER_FIELDS = ["email", "password", "display_name", "mfa_enabled"];

function registered(answer) {
  if (!answer || !answer.success) return undefined;
  const mfa = answer.mfaWish
    ? " Two-factor login is set up on the Account page once you have signed in; until then the account reminds you of it."
    : "";
  return `${answer.message}. We sent a verification link to ${answer.sentTo}. You can log in now.${mfa}`;
}

export function Register() {
  const { answer, busy, submit } = useSubmit(async (values, form) => {
    const mfaWish = values.mfa_enabled === "on";
    const body = { email: values.email, password: values.password, mfa_enabled: mfaWish };
    if (values.display_name) body.display_name = values.display_name;
    const got = emailTaken(await api.post("/v1/auth/register", body));
    if (!got.success) return got;
    form.reset();
    return { ...got, sentTo: values.email, mfaWish };
  });
  return html`<section class="card narrow">
    <${Heading}>Create an account<//>
    <form id="register-form" onSubmit=${submit} autocomplete="on">
      <${Field} label="Email" name="email" answer=${answer} type="email" required autocomplete="username" />
      <${Field} label="Password" name="password" answer=${answer} type="password" required minlength="8" autocomplete="new-password" hint="password-rules" />
      <p class="muted" id="password-rules">${PASSWORD_RULES}</p>
      <${Field} label="Display name" name="display_name" answer=${answer} autocomplete="nickname" />
      <label class="inline"><input name="mfa_enabled" type="checkbox" aria-describedby="mfa-wish" /> Turn on two-factor login</label>
      <p class="muted" id="mfa-wish">You set it up with your authenticator app on the Account page after signing in.</p>
      <div class="buttons">
        <button type="submit" disabled=${busy}>Register</button>
        <a class="button secondary" href="#/">Back to sign-in</a>
      </div>
    </form>
    <${Message} answer=${answer} ok=${registered(answer)} inline=${REGISTER_FIELDS} />
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

const NO_TOKEN = { success: false, message: "This reset link holds no token; ask for a new one." };

// The token of the reset link arrives in the URL fragment; app.js moves it
// here and out of the address bar and history. The screen may render once
// before that (the token still in the address bar): only a link that truly
// holds none is said to.
export function ResetPassword({ token, onDone }) {
  const { answer, busy, submit } = useSubmit(async (values) => {
    // The link's token is the credential: a refusal of it (401) is about the
    // link, and must not end the session of a user who opened it signed in.
    const got = await request("POST", "/v1/auth/reset-password", { token, password: values.password }, { auth: false });
    if (got.success) {
      onDone({ success: true, message: `${got.message}. Log in with the new password.` });
      navigate("/");
    }
    return got;
  });
  const arriving = /[?&]token=[^&]/.test(window.location.hash);
  const missing = !token && !arriving;
  return html`<section class="card narrow">
    <${Heading}>Choose a new password<//>
    <p class="muted">Every session of the account ends.</p>
    <form id="reset-form" onSubmit=${submit} autocomplete="off">
      <${Field} label="New password" name="password" answer=${answer} type="password" required minlength="8" autocomplete="new-password" hint="reset-rules" />
      <p class="muted" id="reset-rules">${PASSWORD_RULES}</p>
      <div class="buttons">
        <button type="submit" disabled=${busy || !token}>Set the password</button>
        <a class="button secondary" href="#/">Cancel</a>
      </div>
    </form>
    <${Message} answer=${answer || (missing ? NO_TOKEN : null)} inline=${["password"]} />
  </section>`;
}
