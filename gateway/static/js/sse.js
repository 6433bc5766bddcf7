// Server-Sent Events read with fetch: EventSource cannot send the
// Authorization header the gateway needs, so the stream is read and split
// into events here. Reconnects after a pause, sending Last-Event-ID when the
// server gave ids; stop() ends it for good.
import { useEffect, useRef, useState } from "./lib.js";
import { session } from "./session.js";

const RETRY_MS = 3_000;

// `auth: false` watches without a token (a stream the API opens to anyone
// holding its own proof, such as an anonymous chat session's token).
export function watch(path, { onEvent, onState, auth = true }) {
  const controller = new AbortController();
  let lastId = "";
  let stopped = false;

  async function readOnce() {
    const headers = { Accept: "text/event-stream" };
    if (auth) headers.Authorization = `Bearer ${session.access}`;
    if (lastId) headers["Last-Event-ID"] = lastId;
    const response = await fetch(path, { headers, signal: controller.signal });
    if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
    onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        dispatch(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  }

  function dispatch(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      else if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("id:")) lastId = line.slice(3).trim();
    }
    if (!data.length) return;
    try {
      onEvent(type, JSON.parse(data.join("\n")));
    } catch {
      // A malformed event is skipped; the stream goes on.
    }
  }

  (async () => {
    while (!stopped && (!auth || session.signedIn)) {
      try {
        await readOnce();
      } catch {
        if (stopped) return;
      }
      if (stopped) return;
      onState("reconnecting");
      await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
    }
  })();

  return { stop() { stopped = true; controller.abort(); } };
}

// A live list for a screen: the newest `keep` events of the watch stream at
// `path`, newest first, and the stream's state; `onNew` runs on each event.
export function useLiveList(path, { keep = 20, onNew = () => {} } = {}) {
  const [state, setState] = useState("connecting");
  const [items, setItems] = useState([]);
  // The latest render's handler: the stream outlives renders, and an early
  // render's handler would act on filters the page no longer shows.
  const handler = useRef(onNew);
  handler.current = onNew;
  useEffect(() => {
    const stream = watch(path, {
      onState: setState,
      onEvent: (type, payload) => {
        if (type !== "message") return;
        setItems((old) => [payload, ...old].slice(0, keep));
        handler.current(payload);
      },
    });
    return () => stream.stop();
  }, [path]);
  return [state, items];
}
