// The one place the vendored view library is imported from, so screens say
// `html` and hooks without knowing file names, and a refresh of the vendored
// packages (console/vendor.mjs) touches only this module.
import { h, render } from "../vendor/preact.js";
import { useCallback, useEffect, useMemo, useRef, useState } from "../vendor/preact-hooks.js";
import htm from "../vendor/htm.js";

// htm turns tagged templates into Preact elements; Preact escapes every
// interpolated string, so server text never becomes markup.
export const html = htm.bind(h);
export { render, useCallback, useEffect, useMemo, useRef, useState };
