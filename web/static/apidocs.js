// The API page: renders /api/openapi.json (FastAPI's OpenAPI document) as plain HTML, with DOM
// calls only (no innerHTML: descriptions are text), so it runs under script-src 'self'.
(function () {
  "use strict";
  var root = document.getElementById("apidocs");
  if (!root) { return; }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function schemaText(spec, schema) {
    if (!schema) { return ""; }
    if (schema.$ref) { return schema.$ref.split("/").pop(); }
    if (schema.anyOf) { return schema.anyOf.map(function (s) { return schemaText(spec, s); }).join(" | "); }
    if (schema.type === "array") { return "array of " + schemaText(spec, schema.items); }
    return schema.type || "object";
  }

  function operation(spec, path, method, op) {
    var section = el("section", {"class": "op", "id": method + "-" + path.replace(/[^a-z0-9]+/gi, "-")}, [
      el("h2", {}, [el("span", {"class": "method " + method}, [method.toUpperCase()]), " ",
                    el("code", {"class": "path"}, [path])]),
    ]);
    if (op.summary) { section.appendChild(el("p", {"class": "summary"}, [op.summary])); }
    if (op.description) {
      op.description.split(/\n\s*\n/).forEach(function (para) {
        section.appendChild(el("p", {"class": "description"}, [para.replace(/\s+/g, " ").trim()]));
      });
    }
    var params = op.parameters || [];
    if (params.length) {
      var rows = params.map(function (p) {
        return el("tr", {}, [el("td", {}, [el("code", {}, [p.name])]), el("td", {}, [p.in]),
                             el("td", {}, [p.required ? "required" : "optional"]),
                             el("td", {}, [schemaText(spec, p.schema)]),
                             el("td", {}, [(p.schema && p.schema["default"] !== undefined)
                                           ? "default " + JSON.stringify(p.schema["default"]) : ""])]);
      });
      section.appendChild(el("table", {"class": "params"}, [
        el("thead", {}, [el("tr", {}, ["parameter", "in", "", "type", ""].map(function (h) {
          return el("th", {}, [h]);
        }))]),
        el("tbody", {}, rows)]));
    }
    if (op.requestBody) {
      var types = Object.keys(op.requestBody.content || {});
      section.appendChild(el("p", {"class": "body"}, ["Request body: " + (types.join(", ") || "any")]));
    }
    var codes = Object.keys(op.responses || {});
    if (codes.length) {
      section.appendChild(el("p", {"class": "responses"}, ["Responses: " + codes.map(function (c) {
        return c + " " + (op.responses[c].description || "");
      }).join("; ")]));
    }
    return section;
  }

  fetch(root.getAttribute("data-spec"), {credentials: "same-origin"})
    .then(function (r) {
      if (!r.ok) { throw new Error("HTTP " + r.status); }
      return r.json();
    })
    .then(function (spec) {
      root.textContent = "";
      var info = spec.info || {};
      root.appendChild(el("p", {"class": "muted", "id": "apidocs-title"},
                          [(info.title || "API") + " " + (info.version || "")]));
      var toc = el("ul", {"class": "toc"}, []);
      root.appendChild(toc);
      Object.keys(spec.paths || {}).sort().forEach(function (path) {
        var item = spec.paths[path];
        ["get", "post", "put", "delete", "patch"].forEach(function (method) {
          if (!item[method]) { return; }
          var section = operation(spec, path, method, item[method]);
          root.appendChild(section);
          toc.appendChild(el("li", {}, [el("a", {"href": "#" + section.id}, [method.toUpperCase() + " " + path])]));
        });
      });
    })
    .catch(function (err) {
      root.textContent = "";
      root.appendChild(el("p", {"class": "notice bad", "id": "apidocs-error"},
                          ["Could not load /api/openapi.json: " + err.message]));
    });
}());
