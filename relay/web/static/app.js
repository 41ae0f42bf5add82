// mjrelay web UI: small progressive enhancements; every page works without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Times are rendered in UTC; show them in the browser's time zone.
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d.getTime()) && d.getUTCFullYear() > 1) {
      t.title = t.textContent;
      t.textContent = d.toLocaleString(undefined, {year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", second: "2-digit"});
    }
  });
  // Filters: since/until without a zone are in the browser's time zone;
  // empty fields are left out of the URL.
  var filters = document.getElementById("filters");
  if (filters) {
    filters.elements.tz.value = String(-new Date().getTimezoneOffset());
    filters.addEventListener("submit", function () {
      Array.prototype.forEach.call(filters.elements, function (el) {
        if (el.name && el.value === "") { el.disabled = true; }
      });
    });
  }
  // Destructive actions ask first.
  document.querySelectorAll("form[data-confirm]").forEach(function (f) {
    f.addEventListener("submit", function (e) {
      if (!window.confirm(f.getAttribute("data-confirm"))) { e.preventDefault(); }
    });
  });
});
