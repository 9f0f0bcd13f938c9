// Starts Swagger UI on the API docs page. A file of its own, never an inline script: the
// page's Content-Security-Policy allows scripts from this origin only.
window.addEventListener("DOMContentLoaded", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: true,
    // Never send the document to the public validator (validator.swagger.io).
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
