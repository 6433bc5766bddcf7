// Admins answering the chat: the sessions waiting for a person, longest
// waiting first (listed again on each change the queue's event stream
// announces; asked every few seconds while that stream is down), and one
// taken session with its conversation live, a reply box and "resolve" (the
// assistant answers again).
import { api } from "../api.js";
import { html, useEffect, useState } from "../lib.js";
import { href, navigate } from "../router.js";
import { watch } from "../sse.js";
import { formatTime, Heading, Message, pageOf, Pager, useLoad } from "../ui.js";
import { AdminNav } from "./admin.js";
import { AGENT_VIEW, Composer, Conversation, merge, useSessionEvents } from "./chat.js";

const REFRESH_MS = 5_000;

// The queue's changes from /v1/chat/escalations:watch: each one (and each
// opening of the stream, which may follow missed ones) lists the queue again;
// while the stream is down the queue is asked every REFRESH_MS instead.
function useQueueChanges(reload) {
  const [state, setState] = useState("");
  useEffect(() => {
    const source = watch("/v1/chat/escalations:watch", {
      onEvent: () => reload(),
      onState: (next) => {
        setState(next);
        if (next === "live") reload();
      },
    });
    return () => source.stop();
  }, [reload]);
  useEffect(() => {
    if (state === "live") return undefined;
    const timer = setInterval(reload, REFRESH_MS);
    return () => clearInterval(timer);
  }, [state, reload]);
  return state;
}

export function AgentQueue({ params }) {
  const page = pageOf(params.page);
  const [answer, reload] = useLoad(() => api.get("/v1/chat/escalations", { page, limit: 20 }), [page]);
  const state = useQueueChanges(reload);
  const sessions = answer && answer.success ? answer.data.sessions : [];
  return html`<section class="card wide">
    <${AdminNav} current="chat" />
    <${Heading}>Chat queue<//>
    <p class="muted">Sessions waiting for a person, longest waiting first;
      ${state === "live" ? " updated as they change." : ` asked again every ${REFRESH_MS / 1000} s.`}
      ${state && html` <span class=${`badge live-${state}`} id="queue-state" aria-live="polite">${state}</span>`}</p>
    ${answer && !answer.success && html`<${Message} answer=${answer} />`}
    <div class="table-scroll"><table id="queue-table">
      <thead><tr><th scope="col">Waiting since</th><th scope="col">Messages</th><th scope="col">The user's last words</th><th scope="col"><span class="visually-hidden">Take</span></th></tr></thead>
      <tbody>${sessions.map((session) => {
        const last = session.messages.filter((message) => message.author === "user").pop();
        return html`<tr key=${session.session_id}>
          <td>${formatTime(session.escalated_at)}</td>
          <td>${session.message_count}</td>
          <td class="clip">${last ? last.content : "—"}</td>
          <td><a class="button small" href=${href(`/admin/chat/${session.session_id}`)}>Take</a></td>
        </tr>`;
      })}</tbody>
    </table></div>
    ${answer && answer.success && sessions.length === 0 && html`<p class="muted">Nobody is waiting.</p>`}
    <${Pager} pagination=${answer && answer.success && answer.data.pagination} onPage=${(next) => navigate("/admin/chat", { page: next })} />
  </section>`;
}

export function AgentSession({ sessionId }) {
  const path = `/v1/chat/sessions/${encodeURIComponent(sessionId)}`;
  const [answer] = useLoad(() => api.get(path), [path]);
  const [messages, setMessages] = useState([]);
  const [level, setLevel] = useState(null);
  const [ended, setEnded] = useState(false);
  const [resolved, setResolved] = useState(null);
  useEffect(() => {
    if (answer && answer.success) {
      setMessages((old) => merge(old, answer.data.messages));
      setLevel(answer.data.escalation_level);
      setEnded(Boolean(answer.data.ended_at));
    }
  }, [answer]);
  const state = useSessionEvents(answer && answer.success && !answer.data.ended_at ? sessionId : "", {
    onMessage: (message) => setMessages((old) => merge(old, [message])),
    onLevel: setLevel,
    onTyping: () => {},
    onEnded: () => setEnded(true),
  });
  const reply = async (content) => {
    const got = await api.post(`${path}/agent-messages`, { content });
    if (got.success) setMessages((old) => merge(old, [got.data]));
    return got;
  };
  const resolve = async () => {
    const got = await api.post(`${path}/resolve`, {});
    setResolved(got);
    if (got.success) setLevel(got.data.escalation_level);
  };
  if (answer && !answer.success) {
    return html`<section class="card"><${Heading}>Chat session<//><${Message} answer=${answer} />
      <p><a href="#/admin/chat">The queue</a></p></section>`;
  }
  return html`<section class="card">
    <${AdminNav} current="chat" />
    <p class="crumbs"><a href="#/admin/chat">Chat queue</a> /</p>
    <${Heading}>Chat session <span class=${`badge live-${state}`}>${state}</span><//>
    <p class="muted" id="session-state">${ended ? "The user ended this session." : level === 2 ? "Waiting for a person: you." : "The assistant answers this session."}</p>
    <${Conversation} messages=${messages} typing=${false} authors=${AGENT_VIEW} />
    ${!ended && level === 2 && html`<${Composer} onSend=${reply} disabled=${false} label="Reply as support" />
      <div class="buttons"><button type="button" class="secondary" onClick=${resolve}>Resolve (hand back to the assistant)</button></div>`}
    <${Message} answer=${resolved} />
  </section>`;
}
