// goex review page: live updates over server-sent events, and small conveniences.
// Parts marked data-live="URL" are reloaded from URL when the journal changes; open
// <details> and chosen diff views survive the reload.
(function () {
  "use strict";

  // One reload per part at a time: a change seen while a part reloads reloads it again after.
  function reload(el) {
    if (el.getAttribute("data-loading")) {
      el.setAttribute("data-stale", "1");
      return;
    }
    var url = el.getAttribute("data-live");
    var from = el.getAttribute("data-live-from");
    if (from) {
      var input = document.querySelector(from);
      if (input && input.value) url += "?q=" + encodeURIComponent(input.value);
    }
    el.setAttribute("data-loading", "1");
    el.removeAttribute("data-stale");
    htmx.ajax("GET", url, { source: el, target: el, swap: "innerHTML" }).finally(function () {
      el.removeAttribute("data-loading");
      if (el.getAttribute("data-stale")) reload(el);
    });
  }

  function refresh() {
    document.querySelectorAll("[data-live]").forEach(reload);
  }

  var kept = {};
  document.addEventListener("htmx:beforeSwap", function (event) {
    var target = event.detail.target;
    kept = { closed: [], checked: [] };
    target.querySelectorAll("details[id]").forEach(function (d) {
      if (!d.open) kept.closed.push(d.id);
    });
    target.querySelectorAll("input[type=radio][id]:checked").forEach(function (r) {
      kept.checked.push(r.id);
    });
  });
  document.addEventListener("htmx:afterSwap", function (event) {
    (kept.closed || []).forEach(function (id) {
      var d = document.getElementById(id);
      if (d) d.open = false;
    });
    (kept.checked || []).forEach(function (id) {
      var r = document.getElementById(id);
      if (r) r.checked = true;
    });
    kept = {};
    if (event.detail.target.id === "plan") event.detail.target.scrollIntoView({ block: "nearest" });
  });

  document.addEventListener("click", function (event) {
    var cancel = event.target.closest(".cancel");
    if (cancel) {
      var panel = cancel.closest(".plan-panel");
      if (panel) panel.innerHTML = "";
    }
  });

  function listen() {
    var live = document.getElementById("live");
    var source = new EventSource("/events");
    var first = true;
    source.addEventListener("hello", function () {
      if (live) live.className = "live on";
      if (!first) refresh(); // reconnected: catch up on what was missed
      first = false;
    });
    source.addEventListener("changed", refresh);
    source.onerror = function () {
      if (live) live.className = "live off";
    };
  }

  document.addEventListener("DOMContentLoaded", listen);
})();
