// The operator console's only script. Every page works without it; it adds live updates to the
// overview: the server sends the re-rendered figures over server-sent events whenever they
// change, and they replace the ones on the page.
(function () {
  "use strict";

  function startLive(region) {
    var url = region.getAttribute("data-live");
    if (!url || typeof window.EventSource !== "function") {
      return;
    }
    var state = document.getElementById("live-state");
    var source = new EventSource(url);
    source.addEventListener("fragment", function (event) {
      // The fragment is HTML the server rendered and escaped, from the same origin.
      region.innerHTML = event.data;
      if (state) {
        state.textContent = state.getAttribute("data-on") || "";
      }
    });
    source.addEventListener("open", function () {
      if (state) {
        state.textContent = state.getAttribute("data-on") || "";
      }
    });
    source.addEventListener("error", function () {
      // EventSource reconnects by itself; the stream also ends on purpose every few minutes.
      if (state) {
        state.textContent = state.getAttribute("data-off") || "";
      }
    });
    source.addEventListener("end", function () {
      // The session ended: stop, and let the next navigation go to the sign-in form.
      source.close();
      if (state) {
        state.textContent = state.getAttribute("data-off") || "";
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var regions = document.querySelectorAll("[data-live]");
    for (var i = 0; i < regions.length; i++) {
      startLive(regions[i]);
    }
  });
})();
