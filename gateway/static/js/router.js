// Hash routes (#/devices/abc?page=2): deep links and the back button work
// with a static page, and the gateway needs no route per screen.
import { useEffect, useState } from "./lib.js";

export function parseHash(hash = window.location.hash) {
  const text = hash.replace(/^#/, "") || "/";
  const [path, search = ""] = text.split("?");
  const parts = path.split("/").filter(Boolean).map(decodePart);
  return { parts, params: Object.fromEntries(new URLSearchParams(search)) };
}

// A malformed escape ("%E0%A4%A", typed or cut off) is kept as typed: the screen
// then says the thing is not found, instead of the whole console failing.
function decodePart(part) {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
}

export function href(path, params) {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") search.set(key, String(value));
  }
  const text = search.toString();
  return `#${path}${text ? `?${text}` : ""}`;
}

export function navigate(path, params, { replace = false } = {}) {
  const target = href(path, params);
  if (replace) {
    history.replaceState(null, "", target);
    window.dispatchEvent(new HashChangeEvent("hashchange"));
  } else {
    window.location.hash = target;
  }
}

export function useRoute() {
  const [route, setRoute] = useState(parseHash);
  useEffect(() => {
    const update = () => setRoute(parseHash());
    window.addEventListener("hashchange", update);
    return () => window.removeEventListener("hashchange", update);
  }, []);
  return route;
}
