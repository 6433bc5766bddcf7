// The support chat: a widget on every screen (a button that opens a panel),
// its session kept for the tab so that moving between screens keeps the
// conversation; signed out, an anonymous session proven by its token; the assistant's replies with links to what they speak of;
// a person's replies as they come (the session's events, Server-Sent Events).
// Also the help article screen the replies link to.
import { api, query } from "../api.js";
import { html, useEffect, useLayoutEffect, useRef, useState } from "../lib.js";
import { href } from "../router.js";
import { watch } from "../sse.js";
import { errorProps, FieldError, formatTime, Heading, Message, useLoad, useSubmit } from "../ui.js";

// The tab's session: its id when signed in (cleared with the sign-in), and
// {id, token} for an anonymous visitor, whose token proves the session theirs.
const SESSION_KEY = "iot.chat_session";
const ANONYMOUS_KEY = "iot.chat_anonymous";
const store = window.sessionStorage;

function savedSession(signedIn) {
  if (signedIn) return { id: store.getItem(SESSION_KEY) || "", token: "" };
  try {
    const { id = "", token = "" } = JSON.parse(store.getItem(ANONYMOUS_KEY) || "{}");
    return { id, token };
  } catch {
    return { id: "", token: "" };
  }
}

function saveSession(signedIn, { id, token }) {
  const key = signedIn ? SESSION_KEY : ANONYMOUS_KEY;
  if (!id) store.removeItem(key);
  else store.setItem(key, signedIn ? id : JSON.stringify({ id, token }));
}
const ASK_FOR_A_PERSON = "I would like to talk to a person";

// Adds messages to a list once each (a reply comes both in the answer to the
// send and as an event), in the order they were stored.
export function merge(messages, more) {
  const known = new Set(messages.map((item) => item.message_id));
  const added = more.filter((item) => item && !known.has(item.message_id));
  if (!added.length) return messages;
  return [...messages, ...added].sort((a, b) => String(a.sent_at).localeCompare(String(b.sent_at)));
}

// The session's events while `sessionId` is set: new messages, typing and
// escalation changes; `onEnded` when it ends. Answers the connection state.
// An anonymous session's `token` goes in the query (there is no bearer token).
export function useSessionEvents(sessionId, { onMessage, onLevel, onTyping, onEnded, token = "" }) {
  const [state, setState] = useState("connecting");
  useEffect(() => {
    if (!sessionId) return undefined;
    const stream = watch(`/v1/chat/sessions/${sessionId}/events${query({ session_token: token })}`, {
      auth: !token,
      onState: setState,
      onEvent: (type, event) => {
        if (type !== "message") return;
        onTyping(event.kind === "typing");
        if (event.kind === "message" && event.message) onMessage(event.message);
        if (typeof event.escalation_level === "number") onLevel(event.escalation_level);
        if (event.kind === "ended") { stream.stop(); onEnded(); }
      },
    });
    return () => stream.stop();
  }, [sessionId]);
  return state;
}

export function ChatWidget({ signedIn }) {
  const [open, setOpen] = useState(false);
  const [current, setCurrent] = useState(() => savedSession(signedIn));
  const sessionId = current.id;
  // Sent with every call of an anonymous session; absent when signed in.
  const proof = current.token ? { session_token: current.token } : {};
  const [messages, setMessages] = useState([]);
  const [level, setLevel] = useState(0);
  const [typing, setTyping] = useState(false);
  const [problem, setProblem] = useState(null);
  const panel = useRef(null);

  const remember = (next) => {
    saveSession(signedIn, next);
    setCurrent(next);
  };
  const forget = () => { remember({ id: "", token: "" }); setMessages([]); };
  // Opening the panel resumes the tab's session, or starts one.
  useEffect(() => {
    if (!open) return;
    (async () => {
      if (sessionId) {
        const got = await api.get(`/v1/chat/sessions/${sessionId}`, proof);
        if (got.success && !got.data.ended_at) {
          setMessages((old) => merge(old, got.data.messages));
          setLevel(got.data.escalation_level);
          return;
        }
      }
      const created = await api.post("/v1/chat/sessions", {});
      setProblem(created.success ? null : created);
      if (!created.success) return;
      setMessages([]);
      setLevel(0);
      remember({ id: created.data.session.session_id, token: created.data.session_token || "" });
    })();
  }, [open, sessionId]);
  useLayoutEffect(() => { if (open && panel.current) panel.current.focus(); }, [open]);
  const state = useSessionEvents(open ? sessionId : "", {
    token: current.token,
    onMessage: (message) => setMessages((old) => merge(old, [message])),
    onLevel: setLevel,
    onTyping: setTyping,
    onEnded: forget,
  });
  const end = async () => {
    if (sessionId) await api.post(`/v1/chat/sessions/${sessionId}/end`, proof);
    forget();
    setOpen(false);
  };
  const send = async (content) => {
    const got = await api.post(`/v1/chat/sessions/${sessionId}/messages`, { content, ...proof });
    if (got.success) {
      setMessages((old) => merge(old, [got.data.message, got.data.reply]));
      setLevel(got.data.escalation_level);
    }
    return got;
  };

  // Escape closes the panel and gives the focus back to its button.
  const closeOnEscape = (event) => {
    if (event.key !== "Escape") return;
    setOpen(false);
    document.getElementById("chat-toggle").focus();
  };
  return html`<aside class=${`chat ${open ? "chat-open" : ""}`} aria-label="Support chat">
    <button type="button" class="chat-toggle" id="chat-toggle" aria-expanded=${open ? "true" : "false"} aria-controls="chat-panel"
      onClick=${() => setOpen(!open)}>${open ? "Close the chat" : "Chat with support"}</button>
    ${open && html`<section class="chat-panel" id="chat-panel" tabindex="-1" ref=${panel} onKeyDown=${closeOnEscape}>
      <h2 class="chat-title">Support chat <span class=${`badge live-${state}`}>${state}</span></h2>
      <${Message} answer=${problem} />
      <${Conversation} messages=${messages} typing=${typing}
        hint=${signedIn ? undefined : "Ask how to use the console, or sign in to ask about your devices."} />
      ${level === 1 && html`<p class="muted">Not what you needed?
        <button type="button" class="secondary small" onClick=${() => send(ASK_FOR_A_PERSON)}>Talk to a person</button></p>`}
      ${level === 2 && html`<p class="muted" id="chat-waiting">A person has been asked to answer; their reply appears here.</p>`}
      <${Composer} onSend=${send} disabled=${!sessionId} label="Your message" />
      <div class="buttons"><button type="button" class="secondary small" onClick=${end}>End the chat</button></div>
    </section>`}
  </aside>`;
}

const USER_VIEW = { user: "You", bot: "Assistant", agent: "Support agent" };
export const AGENT_VIEW = { user: "User", bot: "Assistant", agent: "Support (you or another agent)" };

// The messages, newest at the bottom, announced to screen readers as they come.
// `authors` names who wrote what, as the reader sees it.
export function Conversation({ messages, typing, authors = USER_VIEW, hint = "Ask about your devices, their readings and anomalies, or how to use the console." }) {
  const log = useRef(null);
  useEffect(() => { if (log.current) log.current.scrollTop = log.current.scrollHeight; }, [messages.length, typing]);
  return html`<div class="chat-log" role="log" aria-live="polite" ref=${log} id="chat-log">
    ${messages.length === 0 && html`<p class="muted">${hint}</p>`}
    ${messages.map((message) => html`<div key=${message.message_id} class=${`chat-message from-${message.author || (message.is_bot ? "bot" : "user")}`}>
      <p class="chat-author">${authors[message.author] || message.author} <span class="muted">${formatTime(message.sent_at)}</span></p>
      ${message.author === "user" ? html`<p class="chat-text">${message.content}</p>` : html`<${Markdown} text=${message.content} />`}
      <${FactLinks} facts=${message.facts} />
    </div>`)}
    ${typing && html`<p class="muted">The assistant is writing…</p>`}
  </div>`;
}

// Links to what a reply used: the devices, the streams' charts over the
// reply's time range, and the help articles it quotes.
function FactLinks({ facts }) {
  if (!facts) return null;
  const range = facts.start && facts.end ? { from: Date.parse(facts.start), to: Date.parse(facts.end) } : {};
  const links = [
    ...numbered(facts.device_ids, "The device", "Device").map(([id, label]) => [href(`/devices/${id}`), label]),
    ...numbered(facts.stream_ids, "The chart", "Chart").map(([id, label]) => [href(`/streams/${id}`, range), label]),
    ...(facts.articles || []).map((slug) => [href(`/help/${slug}`), `Help: ${slug.replaceAll("-", " ")}`]),
  ];
  if (!links.length) return null;
  return html`<ul class="chat-facts">${links.map(([url, label]) => html`<li><a href=${url}>${label}</a></li>`)}</ul>`;
}

// Labels for the links to ids a reply names: the one, or each by its place.
function numbered(ids, one, many) {
  const list = ids || [];
  return list.map((id, index) => [id, list.length === 1 ? one : `${many} ${index + 1}`]);
}

// The message box: Enter in the field sends (it is an input, not a text area).
export function Composer({ onSend, disabled, label }) {
  const { answer, busy, submit } = useSubmit(async (values, form) => {
    const got = await onSend(values.content);
    if (got.success) form.reset();
    return got;
  });
  return html`<form class="chat-form" onSubmit=${submit}>
    <label>${label} <input name="content" required maxlength="4000" autocomplete="off" ...${errorProps(answer, "content")} />
      <${FieldError} answer=${answer} field="content" /></label>
    <button type="submit" disabled=${busy || disabled}>Send</button>
    <${Message} answer=${answer && !answer.success ? answer : null} inline=${["content"]} />
  </form>`;
}

// Inline code spans of a line of Markdown as <code>, the rest as text.
function inline(text) {
  return text.split("`").map((part, index) => (index % 2 ? html`<code>${part}</code>` : part));
}

// The little Markdown the help articles and the assistant write: headings,
// paragraphs, "- " lists and `code`, built as elements (never as HTML), so
// that nothing in the text can become markup. `skip` drops a leading title.
export function Markdown({ text, skip = "" }) {
  const blocks = String(text || "").split(/\n\s*\n/).map((block) => block.trim()).filter(Boolean);
  return html`<div class="markdown">${blocks.map((block) => {
    const heading = /^(#{1,6})\s+(.*)$/.exec(block);
    if (heading) {
      if (heading[2] === skip) return null;
      return heading[1].length <= 2 ? html`<h3>${inline(heading[2])}</h3>` : html`<h4>${inline(heading[2])}</h4>`;
    }
    const lines = block.split("\n");
    if (lines.every((line) => /^[-*]\s/.test(line))) {
      return html`<ul>${lines.map((line) => html`<li>${inline(line.slice(2))}</li>`)}</ul>`;
    }
    return html`<p>${inline(lines.join(" "))}</p>`;
  })}</div>`;
}

export function HelpArticle({ slug }) {
  const [answer] = useLoad(() => api.get(`/v1/chat/help/${encodeURIComponent(slug)}`), [slug]);
  if (!answer) return html`<p class="loading">Loading…</p>`;
  if (!answer.success) return html`<section class="card"><${Heading}>Help<//><${Message} answer=${answer} /></section>`;
  return html`<section class="card">
    <${Heading}>${answer.data.title}<//>
    <${Markdown} text=${answer.data.markdown} skip=${answer.data.title} />
  </section>`;
}
