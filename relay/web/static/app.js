// mjrelay web UI: small progressive enhancements; every page works without
// them. No inline script anywhere: this file is the page's only script.
"use strict";
(function () {
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // formatTime writes a date in the browser's time zone, the one way times
  // are written in the UI: 2026-11-24 10:00:05 (fmt "hm": 10:00, "dhm":
  // 11-24 10:00).
  function formatTime(d, fmt) {
    var hm = pad(d.getHours()) + ":" + pad(d.getMinutes());
    var md = pad(d.getMonth() + 1) + "-" + pad(d.getDate());
    if (fmt === "hm") { return hm; }
    if (fmt === "dhm") { return md + " " + hm; }
    return d.getFullYear() + "-" + md + " " + hm + ":" + pad(d.getSeconds());
  }

  function utcText(d) {
    return d.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  // localTimes rewrites the times the server wrote in UTC: <time> elements
  // (UTC on hover) and the charts' axis labels.
  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (t) {
      var d = new Date(t.getAttribute("datetime"));
      if (isNaN(d.getTime()) || d.getUTCFullYear() < 2) { return; }
      t.title = utcText(d);
      t.textContent = formatTime(d, t.getAttribute("data-fmt"));
    });
    root.querySelectorAll("svg text[data-time]").forEach(function (t) {
      var d = new Date(t.getAttribute("data-time"));
      if (!isNaN(d.getTime())) { t.textContent = formatTime(d, t.getAttribute("data-fmt")); }
    });
  }

  function tzOffset() { return String(-new Date().getTimezoneOffset()); }

  // live polls an element's data-live URL every data-every seconds (not
  // while the tab is hidden) and replaces its content when the server's
  // ETag changed; rows that were not there before are marked new.
  function live(el) {
    var url = el.getAttribute("data-live");
    var every = Math.max(1, parseInt(el.getAttribute("data-every") || "5", 10)) * 1000;
    var status = document.querySelector("[data-live-status]");
    var etag = null;
    var busy = false;
    function ids() {
      var seen = {};
      el.querySelectorAll("[data-id]").forEach(function (r) { seen[r.getAttribute("data-id")] = true; });
      return seen;
    }
    function tick() {
      if (busy || document.hidden) { return; }
      busy = true;
      var headers = etag ? {"If-None-Match": etag} : {};
      fetch(url, {headers: headers, credentials: "same-origin", cache: "no-store"}).then(function (res) {
        if (res.status === 304) { return null; }
        if (!res.ok) { throw new Error("HTTP " + res.status); }
        etag = res.headers.get("ETag");
        return res.text();
      }).then(function (html) {
        if (status) {
          status.textContent = "live · " + formatTime(new Date(), "");
          status.classList.remove("stale");
        }
        if (html === null) { return; }
        var before = ids();
        el.innerHTML = html;
        localTimes(el);
        el.querySelectorAll("[data-id]").forEach(function (r) {
          if (!before[r.getAttribute("data-id")]) { r.classList.add("new"); }
        });
      }).catch(function () {
        if (status) { status.textContent = "not updating (relay unreachable)"; status.classList.add("stale"); }
      }).then(function () { busy = false; });
    }
    window.setInterval(tick, every);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) { tick(); } });
  }

  document.addEventListener("DOMContentLoaded", function () {
    localTimes(document);
    // Filters: since/until without a zone are in the browser's time zone;
    // empty fields are left out of the URL.
    var filters = document.getElementById("filters");
    if (filters) {
      filters.elements.tz.value = tzOffset();
      filters.addEventListener("submit", function () {
        Array.prototype.forEach.call(filters.elements, function (el) {
          if (el.name && el.value === "") { el.disabled = true; }
        });
      });
      // A choice in a list filters at once.
      filters.querySelectorAll("select").forEach(function (s) {
        s.addEventListener("change", function () { filters.requestSubmit(); });
      });
    }
    // Links to pages that count by day carry the browser's time zone.
    document.querySelectorAll("a[data-tz]").forEach(function (a) {
      var u = new URL(a.getAttribute("href"), location.href);
      u.searchParams.set("tz", tzOffset());
      a.setAttribute("href", u.pathname + u.search);
    });
    document.querySelectorAll("[data-live]").forEach(live);
    // Destructive actions ask first.
    document.querySelectorAll("form[data-confirm]").forEach(function (f) {
      f.addEventListener("submit", function (e) {
        if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  });
})();
