// The interactive API documentation at /docs: Swagger UI (vendored, see
// console/vendor.mjs) over the gateway's own /openapi.json. A plain script,
// loaded after the bundle that defines SwaggerUIBundle, because the page's
// Content-Security-Policy forbids inline scripts.
"use strict";

// With deep linking on, Swagger UI draws each operation's path as a link inside
// the button that opens it: a second Tab stop per operation that a screen
// reader cannot name (a button's content is not read as links), 99 of them on
// this page. The button opens the operation and puts it in the address bar
// already, so the inner link loses its href (an anchor without one is plain
// text, and a click on it still reaches the button).
function unlinkInnerPaths(root) {
  for (const link of root.querySelectorAll(".opblock-summary-control a[href]")) link.removeAttribute("href");
}

(function startDocs() {
  const root = document.getElementById("swagger-ui");
  new MutationObserver(() => unlinkInnerPaths(root)).observe(root, { childList: true, subtree: true });

  const ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    // The default validator is a badge image from validator.swagger.io: another host.
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    onComplete() {
      // Opened from the console in the same tab: "Try it out" acts as the signed-in
      // user, with the access token the console keeps in this tab's sessionStorage.
      const token = window.sessionStorage.getItem("iot.access_token");
      if (token) ui.preauthorizeApiKey("bearerAuth", token);
    },
  });
})();
