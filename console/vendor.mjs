// Copies the console's front-end packages from node_modules into
// gateway/static/vendor/, where the gateway serves them, so that running or
// testing the suite needs no Node. Run after `npm ci` (see the README).
//
// The browser loads these as ES modules without an import map: an inline
// <script type="importmap"> would need 'unsafe-inline' (or a hash) in the
// console's Content-Security-Policy. So the bare specifier "preact" in the
// hooks module is rewritten to the vendored file's relative path.
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");
const target = join(here, "..", "gateway", "static", "vendor");

const version = (name) => JSON.parse(readFileSync(join(modules, name, "package.json"), "utf8")).version;

// Drops the source-map comment: the maps are not vendored, and a browser's
// developer tools would ask the gateway for them.
const withoutSourceMap = (text) => text.replace(/\n?\/\/# sourceMappingURL=\S+\s*$/, "\n");

rmSync(target, { recursive: true, force: true });
mkdirSync(target, { recursive: true });

const files = {
  "preact.js": withoutSourceMap(readFileSync(join(modules, "preact/dist/preact.mjs"), "utf8")),
  "preact-hooks.js": withoutSourceMap(readFileSync(join(modules, "preact/hooks/dist/hooks.mjs"), "utf8"))
    .replaceAll('from"preact"', 'from"./preact.js"'),
  "htm.js": withoutSourceMap(readFileSync(join(modules, "htm/dist/htm.mjs"), "utf8")),
  // uPlot's ES module build is not minified (145 KB); its minified build is a
  // script that assigns a global, turned into a module by exporting that name.
  "uplot.js": readFileSync(join(modules, "uplot/dist/uPlot.iife.min.js"), "utf8") + "\nexport default uPlot;\n",
  // QR codes of the MFA set-up; loaded only there.
  "uqr.js": readFileSync(join(modules, "uqr/dist/index.mjs"), "utf8"),
};
for (const [name, text] of Object.entries(files)) {
  if (/from\s*"(?!\.\/)/.test(text)) throw new Error(`${name} still imports a bare specifier`);
  writeFileSync(join(target, name), text);
}
copyFileSync(join(modules, "uplot/dist/uPlot.min.css"), join(target, "uplot.css"));

// Swagger UI for the API documentation at /docs (never loaded by the console).
// Its bundle is a UMD script that sets the global SwaggerUIBundle: /docs loads
// it with a plain <script src>, then its own gateway/static/js/docs.js. The
// standalone preset is left out: it injects an inline <style> for its logo.
writeFileSync(
  join(target, "swagger-ui-bundle.js"),
  withoutSourceMap(readFileSync(join(modules, "swagger-ui-dist/swagger-ui-bundle.js"), "utf8")),
);
writeFileSync(
  join(target, "swagger-ui.css"),
  readFileSync(join(modules, "swagger-ui-dist/swagger-ui.css"), "utf8")
    .replace(/\n*\/\*# sourceMappingURL=\S+?\s*\*\/\s*$/, "\n"),
);

// Licences travel with the code they cover.
const PACKAGES = ["preact", "htm", "uplot", "uqr", "swagger-ui-dist"];
for (const name of PACKAGES) {
  copyFileSync(join(modules, name, "LICENSE"), join(target, `LICENSE-${name}.txt`));
}
// Apache-2.0 asks for the NOTICE file too.
copyFileSync(join(modules, "swagger-ui-dist/NOTICE"), join(target, "NOTICE-swagger-ui-dist.txt"));
const versions = Object.fromEntries(PACKAGES.map((name) => [name, version(name)]));
writeFileSync(join(target, "VERSIONS.json"), JSON.stringify(versions, null, 2) + "\n");
console.log(`vendored into ${target}:`, versions);
