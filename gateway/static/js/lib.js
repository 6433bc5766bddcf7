// The one place the vendored view library is imported from, so screens say
// `html` and hooks without knowing file names, and a refresh of the vendored
// packages (console/vendor.mjs) touches only this module.
import { h, render } from "../vendor/preact.js";
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "../vendor/preact-hooks.js";
import htm from "../vendor/htm.js";

// htm turns tagged templates into Preact elements; Preact escapes every
// interpolated string, so server text never becomes markup.
export const html = htm.bind(h);
// Focus moves (a form opened, a question asked, a screen's heading) are layout
// effects: they run as the change is drawn. A plain effect runs a frame later,
// on a busy phone after the person has already started typing in the new
// field, and the focus then jumps back mid-word (text meant for the latitude
// went into the name).
export { render, useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState };
