// The interactive API documentation at /docs: Swagger UI (vendored, see
// console/vendor.mjs) over the gateway's own /openapi.json. A plain script,
// loaded after the bundle that defines SwaggerUIBundle, because the page's
// Content-Security-Policy forbids inline scripts.
"use strict";

(function startDocs() {
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
