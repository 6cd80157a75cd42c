// Small helpers for the dashboard; every page reads fine without them.
(function () {
  "use strict";
  var fmt = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
  });
  // Each <time> shows the runner's zone; the browser's own reading goes beside it.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      if (t.dataset.local) return;
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d)) return;
      var mine = fmt.format(d);
      t.dataset.local = "1";
      t.title = "your time: " + mine;
      if (String(-d.getTimezoneOffset()) !== t.dataset.offset) {
        var s = document.createElement("span");
        s.className = "sub local";
        s.textContent = "yours: " + mine;
        t.after(s);
      }
    });
  }
  // A run's log, followed while the run is in flight (Server-Sent Events from the API).
  function follow() {
    var pre = document.getElementById("log");
    if (!pre || !pre.dataset.follow || !window.EventSource) return;
    pre.textContent = "";
    var src = new EventSource(pre.dataset.follow);
    function add(text) {
      var atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(text + "\n");
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    }
    // Each `line` event: {"stream", "at", "line"}; then one `end` with the final status.
    function onLine(e) {
      var line = e.data;
      try { var o = JSON.parse(e.data); if (o && typeof o.line === "string") line = (o.stream === "stderr" ? "! " : "") + o.line; } catch (_) {}
      add(line);
    }
    src.addEventListener("line", onLine);
    src.onmessage = onLine;
    // The stream ends with the run; without this the browser would reconnect and replay it.
    src.addEventListener("end", function () { src.close(); });
  }
  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    follow();
    var z = document.querySelector(".browser-zone");
    if (z) z.textContent = " · yours: " + Intl.DateTimeFormat().resolvedOptions().timeZone;
  });
  document.addEventListener("htmx:afterSwap", function (e) { localTimes(document); });
  document.addEventListener("htmx:afterSettle", function (e) { localTimes(document); });
})();
