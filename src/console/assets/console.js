// orderd console: live updates over Server-Sent Events. Hand-written, no
// dependencies, compiled into the binary. Everything works without it
// (reload the page); with it, blotter rows change in place and the health
// charts move.
(function () {
  "use strict";

  function ready(f) {
    if (document.readyState !== "loading") { f(); } else { document.addEventListener("DOMContentLoaded", f); }
  }

  function say(el, text) { if (el) { el.textContent = text; } }

  function clock() { return new Date().toISOString().substring(11, 19) + " UTC"; }

  // The blotter: a pushed row replaces the row with its id, or is added
  // at the top of the first page of a newest-first view.
  function liveBlotter(table) {
    var status = document.getElementById("live-status");
    var body = document.getElementById("orders");
    var insert = table.getAttribute("data-insert") === "true";
    var source = new EventSource(table.getAttribute("data-live"));
    source.addEventListener("hello", function () { say(status, "Live updates: on (rows change in place)"); });
    source.addEventListener("order", function (event) {
      var holder = document.createElement("tbody");
      holder.innerHTML = event.data;
      var row = holder.firstElementChild;
      if (!row || !row.id) { return; }
      var old = document.getElementById(row.id);
      if (old) {
        old.parentNode.replaceChild(row, old);
      } else if (insert) {
        body.insertBefore(row, body.firstChild);
        var rows = body.getElementsByTagName("tr");
        var most = parseInt(table.getAttribute("data-page-rows") || "50", 10);
        while (rows.length > most) { body.removeChild(rows[rows.length - 1]); }
      } else {
        return;
      }
      row.classList.add("flash");
      say(status, "Live updates: on, last change " + clock());
    });
    source.addEventListener("attention", function (event) {
      var counts = JSON.parse(event.data);
      ["parked", "unknown", "stuck"].forEach(function (kind) {
        var count = document.getElementById("count-" + kind);
        var card = document.getElementById("card-" + kind);
        if (!count || !card) { return; }
        count.textContent = String(counts[kind]);
        card.className = "card" + (counts[kind] > 0 ? " " + card.getAttribute("data-alert") : "");
      });
    });
    source.addEventListener("lagged", function () { say(status, "Live updates fell behind: reload to be sure"); });
    source.onerror = function () { say(status, "Live updates: reconnecting…"); };
  }

  // The health charts: the last minute of each number as a polyline.
  var POINTS = 60;

  function draw(figure, values) {
    var line = figure.querySelector("polyline");
    var shown = values.filter(function (v) { return v !== null; });
    var top = Math.max.apply(null, shown.concat([1]));
    var points = [];
    for (var i = 0; i < values.length; i++) {
      if (values[i] === null) { continue; }
      var x = (300 * (i + POINTS - values.length)) / (POINTS - 1);
      var y = 88 - (84 * values[i]) / top;
      points.push(x.toFixed(1) + "," + y.toFixed(1));
    }
    line.setAttribute("points", points.join(" "));
  }

  function liveHealth(charts) {
    var series = { "orders-per-s": [], latency: [], unknown: [] };
    var source = new EventSource(charts.getAttribute("data-live"));
    source.addEventListener("numbers", function (event) {
      var n = JSON.parse(event.data);
      var values = {
        "orders-per-s": n.orders_per_s,
        latency: n.p99_ms,
        unknown: n.unknown
      };
      var texts = {
        "orders-per-s": n.orders_per_s.toFixed(1),
        latency: (n.p50_ms === null ? "–" : n.p50_ms.toFixed(1)) + " / " + (n.p99_ms === null ? "–" : n.p99_ms.toFixed(1)),
        unknown: String(n.unknown)
      };
      Object.keys(series).forEach(function (id) {
        var list = series[id];
        list.push(values[id]);
        if (list.length > POINTS) { list.shift(); }
        var figure = document.getElementById(id);
        if (!figure) { return; }
        figure.querySelector(".value").textContent = texts[id];
        draw(figure, list);
      });
    });
  }

  ready(function () {
    if (!window.EventSource) { return; }
    var table = document.getElementById("blotter");
    if (table) { liveBlotter(table); }
    var charts = document.getElementById("charts");
    if (charts) { liveHealth(charts); }
  });
})();
