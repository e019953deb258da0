// inferwatch dashboard: draws the charts embedded as JSON data blocks, and on the fleet page
// sorts/filters the table (state kept in the URL hash, so it survives refreshes) and refreshes
// its cells from /api/v1/backends every 15 s without reloading the page. No inline code: CSP.
(function () {
  "use strict";

  function drawCharts() {
    if (typeof Plotly === "undefined") { return; }
    document.querySelectorAll("script.chart-data").forEach(function (el) {
      var target = document.getElementById(el.dataset.target);
      if (!target) { return; }
      var fig = JSON.parse(el.textContent);
      Plotly.newPlot(target, fig.data, fig.layout, { displaylogo: false, responsive: true });
    });
  }

  // -- formatting: mirrors web/render.py fmt() and level() -------------------------------------
  function fmt(v, kind) {
    if (v === null || v === undefined || Number.isNaN(v)) { return "–"; }
    if (kind === "s") {
      if (Math.abs(v) < 1) { return (v * 1000).toFixed(0) + " ms"; }
      if (Math.abs(v) < 60) { return v.toFixed(2) + " s"; }
      var whole = Math.round(v), h = Math.floor(whole / 3600), m = Math.floor((whole % 3600) / 60), sec = whole % 60;
      return h ? h + "h " + String(m).padStart(2, "0") + "m" : m + "m " + String(sec).padStart(2, "0") + "s";
    }
    if (kind === "pct") { return (v * 100).toFixed(1) + " %"; }
    if (kind === "int") { return Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1); }
    return v.toFixed(1);
  }
  function level(v, bad) {
    if (v === null || v === undefined || bad === undefined || bad === null) { return "na"; }
    if (v > bad) { return "bad"; }
    return v > 0.8 * bad ? "warn" : "ok";
  }
  function get(obj, key) {
    var cur = obj;
    key.split(".").forEach(function (p) { cur = (cur && typeof cur === "object") ? cur[p] : null; });
    return typeof cur === "number" ? cur : null;
  }

  // -- state in the hash: #sort=<key>:<asc|desc>&filter=<text> ---------------------------------
  function readState() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var sort = (params.get("sort") || "").split(":");
    return { key: sort[0] || "", dir: sort[1] === "desc" ? "desc" : "asc", filter: params.get("filter") || "" };
  }
  function writeState(st) {
    var params = new URLSearchParams();
    if (st.key) { params.set("sort", st.key + ":" + st.dir); }
    if (st.filter) { params.set("filter", st.filter); }
    history.replaceState(null, "", location.pathname + location.search + (params.toString() ? "#" + params : ""));
  }

  function cellValue(row, key) {
    var td = row.querySelector('td[data-key="' + key + '"]');
    if (!td) { return null; }
    var raw = td.dataset.value;
    try { var v = JSON.parse(raw); return typeof v === "number" ? v : raw; } catch (e) { return raw; }
  }

  function applySort(table, st) {
    var body = table.tBodies[0];
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      th.classList.toggle("sorted-asc", th.dataset.sort === st.key && st.dir === "asc");
      th.classList.toggle("sorted-desc", th.dataset.sort === st.key && st.dir === "desc");
    });
    if (!st.key) { return; }
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, st.key), y = cellValue(b, st.key);
      if (x === null && y === null) { return 0; }
      if (x === null) { return 1; }          // missing values last, whatever the direction
      if (y === null) { return -1; }
      var c = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y));
      return st.dir === "desc" ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function applyFilter(table, st) {
    var terms = st.filter.toLowerCase().split(/\s+/).filter(Boolean);
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var hay = (row.dataset.name + " " + row.dataset.labels).toLowerCase();
      var show = terms.every(function (t) { return hay.indexOf(t) >= 0; });
      row.classList.toggle("hidden", !show);
    });
  }

  function refresh(table, config, st) {
    var status = document.getElementById("refresh-status");
    fetch("/api/v1/backends?window=" + encodeURIComponent(config.window), { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (list) {
        list.forEach(function (s) {
          var row = Array.prototype.find.call(table.tBodies[0].rows, function (r) { return r.dataset.name === s.name; });
          if (!row) { return; }
          config.columns.forEach(function (col) {
            var td = row.querySelector('td[data-key="' + col.key + '"]');
            if (!td) { return; }
            var v = get(s, col.key);
            td.dataset.value = JSON.stringify(v);
            td.textContent = fmt(v, col.fmt);
            td.className = "num " + level(v, JSON.parse(td.dataset.bad || "null"));
          });
          var st_td = row.querySelector('td[data-key="status"]');
          if (st_td && s.last_scrape !== null) {
            st_td.dataset.value = s.up ? "up" : "down";
            st_td.className = s.up ? "ok" : "bad";
            st_td.textContent = s.up ? "up" : "down";
            if (!s.up && s.reason) {
              var div = document.createElement("div");
              div.className = "reason";
              div.textContent = s.reason;   // textContent: never parsed as HTML
              st_td.appendChild(div);
            }
          }
        });
        var waiting = document.getElementById("waiting");
        if (waiting && list.some(function (s) { return s.last_scrape !== null; })) { waiting.remove(); }
        applySort(table, st);
        applyFilter(table, st);
        if (status) { status.textContent = "updated " + new Date().toLocaleTimeString(); }
      })
      .catch(function (e) { if (status) { status.textContent = "refresh failed: " + e.message; } });
  }

  function fleet() {
    var table = document.getElementById("fleet");
    var cfgEl = document.getElementById("fleet-config");
    if (!table || !cfgEl) { return; }
    var config = JSON.parse(cfgEl.textContent);
    var st = readState();
    var input = document.getElementById("filter");
    if (input) {
      input.value = st.filter;
      input.addEventListener("input", function () { st.filter = input.value; writeState(st); applyFilter(table, st); });
    }
    table.querySelectorAll("th[data-sort]").forEach(function (th) {
      th.addEventListener("click", function () {
        if (st.key === th.dataset.sort) { st.dir = st.dir === "asc" ? "desc" : "asc"; }
        else { st.key = th.dataset.sort; st.dir = "asc"; }
        writeState(st);
        applySort(table, st);
      });
    });
    applySort(table, st);
    applyFilter(table, st);
    setInterval(function () { refresh(table, config, st); refreshAlerts(table); }, (config.refresh_seconds || 15) * 1000);
  }

  // The firing column and the alerts of no single backend (SLO burn, GPU, certificate), from
  // /api/v1/alerts: text only (textContent), as everything this script writes.
  function refreshAlerts(table) {
    fetch("/api/v1/alerts?state=firing&limit=1", { credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
      .then(function (doc) {
        var perBackend = {};
        var wide = [];
        doc.active.forEach(function (a) {
          if (a.labels.backend !== undefined) { perBackend[a.labels.backend] = (perBackend[a.labels.backend] || 0) + 1; }
          else { wide.push(a); }
        });
        Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
          var td = row.querySelector('td[data-key="firing"]');
          if (!td) { return; }
          var n = perBackend[row.dataset.name] || 0;
          td.dataset.value = String(n);
          td.className = "num " + (n ? "bad" : "ok");
          td.textContent = "";
          if (n) { var a = document.createElement("a"); a.href = "/alerts"; a.textContent = String(n); td.appendChild(a); }
          else { td.textContent = "0"; }
        });
        var section = document.getElementById("fleet-alerts");
        var list = document.getElementById("fleet-alerts-list");
        var title = document.getElementById("fleet-alerts-title");
        if (!section || !list || !title) { return; }
        section.hidden = wide.length === 0;
        section.className = "notice " + (wide.length ? "bad" : "ok");
        title.textContent = wide.length + " firing beyond single backends (SLOs, GPUs, certificates)";
        list.textContent = "";
        wide.forEach(function (a) {
          var li = document.createElement("li");
          var name = document.createElement("span");
          name.className = a.labels.severity || "";
          name.textContent = a.labels.alertname || a.rule;
          li.appendChild(name);
          var labels = Object.keys(a.labels).filter(function (k) { return k !== "alertname" && k !== "severity"; })
            .sort().map(function (k) { return k + "=" + a.labels[k]; }).join(" ");
          li.appendChild(document.createTextNode(" " + labels + (a.annotations.summary ? " — " + a.annotations.summary : "")));
          list.appendChild(li);
        });
      })
      .catch(function () { /* the table's own refresh reports failures */ });
  }

  document.addEventListener("DOMContentLoaded", function () { drawCharts(); fleet(); });
}());
