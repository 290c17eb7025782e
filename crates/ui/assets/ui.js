// Tasker dashboard: live updates. The page's <body data-live="..."> names a
// Server-Sent Events URL that says "something changed" (one message per
// lifecycle event). On a message, after a short pause to gather bursts,
// this fires `tasker:changed` on <body>; regions marked
// hx-trigger="tasker:changed from:body" then fetch themselves again (htmx).
// EventSource reconnects by itself and resumes after the last event id.
// The stream is closed when the page is hidden (navigation, back-forward
// cache): a page kept in the cache would otherwise hold its connection,
// and a browser allows only six per server, so after a few pages the
// buttons' requests would wait for a free one. It reopens when the page
// is shown again (the events since the page was rendered refresh it).
(function () {
  "use strict";
  var url = document.body.getAttribute("data-live");
  if (!url || !window.EventSource) return;
  var timer = null;
  var source = null;
  function open() {
    if (source !== null) return;
    source = new EventSource(url);
    document.body.setAttribute("data-live-state", "connecting");
    source.onmessage = function () {
      if (timer !== null) return;
      timer = window.setTimeout(function () {
        timer = null;
        document.body.dispatchEvent(new CustomEvent("tasker:changed", { bubbles: true }));
      }, 150);
    };
    source.onopen = function () { document.body.setAttribute("data-live-state", "open"); };
    source.onerror = function () { document.body.setAttribute("data-live-state", "retrying"); };
  }
  function close() {
    if (source === null) return;
    source.close();
    source = null;
    document.body.setAttribute("data-live-state", "closed");
  }
  window.addEventListener("pagehide", close);
  window.addEventListener("pageshow", open);
  open();
})();
