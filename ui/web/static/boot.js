// Starts the map's data request while plotly.js is still loading (it is large), so the two
// overlap; app.js takes the response over. Runs at the end of <body>, before deferred scripts.
"use strict";
(function prefetchMap() {
  if (document.body.dataset.page !== "map") return;
  const url = new URLSearchParams(window.location.search);
  const range = url.get("range") || "900";
  if (range === "custom") return;
  const now = Date.now() / 1000;
  const query = new URLSearchParams({ start: (now - Number(range)).toFixed(3), end: now.toFixed(3) });
  if (url.get("filter")) query.set("filter", url.get("filter"));
  window.fluoroPrefetch = {
    path: "/ui/data/map",
    response: fetch(`/ui/data/map?${query}`, { credentials: "same-origin", headers: { Accept: "application/json" } }),
  };
})();
