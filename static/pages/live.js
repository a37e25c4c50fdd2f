/* Live pages: every few seconds, fetch this page again and swap in the parts marked `data-live`
   (matched by id) without a full reload. No library, no CDN. The interval is the body's
   data-refresh-seconds (PAGES_REFRESH_SECONDS); a page without it is never refreshed. */
(function () {
  "use strict";
  var seconds = Number(document.body.getAttribute("data-refresh-seconds") || 0);
  if (!(seconds > 0) || !window.fetch || !window.DOMParser) return;
  var busy = false;

  function swap(html) {
    var fresh = new DOMParser().parseFromString(html, "text/html");
    var nodes = document.querySelectorAll("[data-live][id]");
    for (var i = 0; i < nodes.length; i++) {
      var current = nodes[i];
      var next = fresh.getElementById(current.id);
      if (next && next.outerHTML !== current.outerHTML) {
        current.replaceWith(document.importNode(next, true));
      }
    }
    document.body.setAttribute("data-refreshed-at", new Date().toISOString());
  }

  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    fetch(window.location.href, { cache: "no-store", credentials: "same-origin", headers: { "X-Live-Refresh": "1" } })
      .then(function (response) {
        if (!response.ok) throw new Error("HTTP " + response.status);
        return response.text();
      })
      .then(swap)
      .catch(function () { /* keep what is shown; the next tick tries again */ })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, seconds * 1000);
})();
