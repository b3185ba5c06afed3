// The map page's first paint, before plotly.js (4.6 MB, ~2 s to compile on a first visit, the
// page frozen meanwhile) is ready: the map's data request starts here, its figure is drawn at
// once as a plain SVG — rings, edges, labels, from the same figure JSON plotly will draw — and
// only then is plotly.js loaded, to replace it with the interactive map (app.js takes the
// response over and waits for window.fluoroPlotly). Span-borne text goes in as textContent
// only: it stays inert.
// Inlined in the map page's <head> (the policy allows it by its hash): the request starts as
// soon as the head is parsed, without first fetching this script from a server that may be
// busy building the very map it asks for.
"use strict";
(function firstPaint() {
  const SVG = "http://www.w3.org/2000/svg";
  const url = new URLSearchParams(window.location.search);
  const range = url.get("range") || "900";
  const now = Date.now() / 1000;
  const query = new URLSearchParams({ start: (now - Number(range)).toFixed(3), end: now.toFixed(3) });
  for (const key of ["filter", "group", "view", "focus"]) if (url.get(key)) query.set(key, url.get(key));

  function entities(text) {  // map_figure.inert() escaped the text for plotly: the characters again
    const named = { "&lt;": "<", "&gt;": ">", "&quot;": '"', "&#x27;": "'", "&#39;": "'", "&amp;": "&" };
    return String(text).replace(/&(lt|gt|quot|amp|#x27|#39);/g, (found) => named[found]);
  }

  function runs(trace) {  // the polylines of a trace: points between nulls
    const parts = [];
    let part = [];
    (trace.x || []).forEach((x, i) => {
      const y = trace.y[i];
      if (x === null || y === null || x === undefined) {
        if (part.length) parts.push(part);
        part = [];
      } else {
        part.push([x, y]);
      }
    });
    if (part.length) parts.push(part);
    return parts;
  }

  function add(parent, tag, attributes) {
    const node = document.createElementNS(SVG, tag);
    Object.entries(attributes).forEach(([key, value]) => node.setAttribute(key, String(value)));
    parent.appendChild(node);
    return node;
  }

  // readyState leaves "loading" once the body is parsed, before the deferred scripts run:
  // DOMContentLoaded would also wait for app.js to arrive, which the preview does not need.
  function whenParsed() {
    return document.readyState === "loading"
      ? new Promise((resolve) => document.addEventListener("readystatechange", resolve, { once: true }))
      : Promise.resolve();
  }

  function plain(text) {  // our own markup (line breaks, the type's span) out, then the characters
    return entities(String(text).replace(/<[^>]*>/g, ""));
  }

  function draw(figure) {  // in pixels, y pointing down: the figure's units (map_canvas.py)
    const target = document.getElementById("map");
    if (!target || target.dataset.drawn || !figure || !figure.layout.meta) return;
    const { width_px: width, height_px: height } = figure.layout.meta;
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "map-preview");
    svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
    svg.setAttribute("width", width);
    svg.setAttribute("height", height);
    const point = ([x, y]) => `${x},${y}`;
    for (const trace of figure.data) {
      if (trace.mode === "lines" && trace.fill === "toself") {
        runs(trace).forEach((part) => add(svg, "polygon", { points: part.map(point).join(" "), fill: trace.fillcolor }));
      } else if (trace.mode === "lines") {
        const dash = trace.line && trace.line.dash !== "solid" ? "6,5" : "none";
        runs(trace).forEach((part) => add(svg, "polyline", {
          points: part.map(point).join(" "), fill: "none", stroke: trace.line.color,
          "stroke-width": 1.6, "stroke-dasharray": dash,
        }));
      } else if (trace.mode === "markers+text" && trace.text) {  // edge labels: rate and p99
        trace.x.forEach((x, i) => {
          add(svg, "text", { x, y: trace.y[i] - 6, "text-anchor": "middle", "font-size": 10, fill: "#3d4752" })
            .textContent = plain(trace.text[i]);
        });
      } else if (trace.mode === "text") {
        trace.x.forEach((x, i) => {
          const label = add(svg, "text", { x, y: trace.y[i], "text-anchor": "middle", "font-size": 11, fill: trace.textfont.color });
          String(trace.text[i]).split("<br>").forEach((line, n) => {
            add(label, "tspan", { x, dy: n === 0 ? 12 : 14 }).textContent = plain(line);
          });
        });
      }
    }
    target.appendChild(svg);
    performance.mark("map previewed");
  }

  function loadPlotly() {
    return new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = "/static/plotly.min.js";
      script.onload = resolve;
      script.onerror = reject;
      document.head.appendChild(script);
    });
  }

  if (range === "custom") {
    window.fluoroPlotly = loadPlotly();
    return;
  }
  const response = fetch(`/ui/data/map?${query}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
  const painted = response
    .then((answer) => (answer.ok ? answer.clone().json() : null))
    .then((body) => body && whenParsed().then(() => draw(body.figure)))
    .catch(() => null);
  // a frame for the preview to be painted in, then plotly.js
  window.fluoroPlotly = painted.then(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)))).then(loadPlotly);
  window.fluoroPrefetch = { path: "/ui/data/map", response };
})();
