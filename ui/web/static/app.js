// Fluoro's pages. Figures arrive built (plotly JSON from /ui/data); this script renders them,
// keeps the window and filter in the URL, refreshes in live mode without losing the
// selection, and writes every string that came in a span with textContent, never as HTML.
"use strict";

const LIVE_MS = 5000;
const PLOT_CONFIG = { displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d"] };

// ------------------------------------------------------------------ helpers

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

function kvTable(rows) {
  const table = el("table", null, "kv");
  for (const [key, value] of rows) {
    const tr = document.createElement("tr");
    tr.appendChild(el("th", key));
    tr.appendChild(el("td", value === null || value === undefined ? "–" : value));
    table.appendChild(tr);
  }
  return table;
}

function ms(value) { return value === null || value === undefined ? "–" : `${Number(value).toFixed(1)} ms`; }
function pct(value) { return value === null || value === undefined ? "–" : `${(value * 100).toFixed(1)}%`; }
function money(value, currency) {
  if (value === null || value === undefined) return "–";
  const digits = value >= 1 ? 2 : value >= 0.01 ? 4 : 6;
  return `${currency === "USD" ? "$" : `${currency} `}${value.toFixed(digits)}`;
}
function quoted(text) { return JSON.stringify(String(text)); }  // a filter-expression string literal

function params() { return new URLSearchParams(window.location.search); }

function setParams(changes) {
  const next = params();
  for (const [key, value] of Object.entries(changes)) {
    if (value === null || value === undefined || value === "") next.delete(key); else next.set(key, value);
  }
  const query = next.toString();
  history.replaceState(null, "", window.location.pathname + (query ? `?${query}` : ""));
}

function windowParams() {
  const range = document.getElementById("range").value;
  if (range === "custom") {
    const start = document.getElementById("custom-start").value;
    const end = document.getElementById("custom-end").value;
    if (start && end) return { start: `${start}Z`, end: `${end}Z` };
  }
  const seconds = Number(range === "custom" ? 900 : range);
  const now = Date.now() / 1000;
  return { start: (now - seconds).toFixed(3), end: now.toFixed(3) };
}

function mark(name) {  // first occurrence only: bench/ui.py reads these
  if (!performance.getEntriesByName(name).length) performance.mark(name);
}

function setStatus(text) { document.getElementById("status").textContent = text; }

class FilterError extends Error {
  constructor(body) { super(body.reason || body.detail); this.body = body; }
}

async function getJSON(path, query) {
  const url = query ? `${path}?${new URLSearchParams(query)}` : path;
  const prefetched = window.fluoroPrefetch && window.fluoroPrefetch.path === path ? window.fluoroPrefetch : null;
  if (prefetched) window.fluoroPrefetch = null;  // boot.js's request serves the first call for its path only
  const response = prefetched
    ? await prefetched.response
    : await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    window.location.assign(`/login?next=${encodeURIComponent(window.location.pathname + window.location.search)}`);
    throw new Error("not logged in");
  }
  const body = await response.json();
  if (response.status === 400) throw new FilterError(body);
  if (!response.ok) throw new Error(body.detail || `HTTP ${response.status}`);
  return body;
}

function showFilterError(error) {
  const box = document.getElementById("filter-error");
  if (!box) return;
  if (!error) { box.hidden = true; box.textContent = ""; return; }
  const input = document.getElementById("filter");
  const body = error.body || {};
  const lines = [];
  if (body.column && input) {
    lines.push(input.value);
    lines.push(`${" ".repeat(Math.max(0, body.column - 1))}^`);
  }
  lines.push(body.reason ? `column ${body.column}: ${body.reason}` : String(body.detail || error.message));
  box.textContent = lines.join("\n");
  box.hidden = false;
}

async function render(target, figure, extra) {
  await window.fluoroPlotly;  // the map page loads plotly.js after its first paint (boot.js)
  const node = typeof target === "string" ? document.getElementById(target) : target;
  node.dataset.drawn = "1";  // boot.js's first-paint preview gives way to plotly's figure
  node.querySelectorAll(":scope > .map-preview").forEach((preview) => preview.remove());
  return Plotly.react(node, figure.data, Object.assign({}, figure.layout, extra || {}), PLOT_CONFIG);
}

function startControls(refresh) {
  startGroups(refresh);
  const range = document.getElementById("range");
  const live = document.getElementById("live");
  const current = params();
  if (current.get("range")) range.value = current.get("range");
  if (current.get("live") === "0") live.checked = false;
  const custom = document.getElementById("custom-range");
  for (const [key, id] of [["start", "custom-start"], ["end", "custom-end"]]) {  // a link's window, in epoch seconds
    const seconds = Number(current.get(key));
    if (current.get(key) && Number.isFinite(seconds)) {
      document.getElementById(id).value = new Date(seconds * 1000).toISOString().slice(0, 19);
    }
  }
  const syncCustom = () => { custom.hidden = range.value !== "custom"; };
  syncCustom();
  range.addEventListener("change", () => { syncCustom(); setParams({ range: range.value }); refresh(); });
  for (const id of ["custom-start", "custom-end"]) {
    document.getElementById(id).addEventListener("change", () => refresh());
  }
  live.addEventListener("change", () => setParams({ live: live.checked ? null : "0" }));
  document.getElementById("window-form").addEventListener("submit", (event) => { event.preventDefault(); refresh(); });
  setInterval(() => { if (live.checked && !document.hidden) refresh(); }, LIVE_MS);
  const filter = document.getElementById("filter");
  if (filter && current.get("filter")) filter.value = current.get("filter");
  const form = document.getElementById("filter-form");
  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      setParams({ filter: filter.value.trim() });
      refresh();
    });
  }
}

async function guarded(work) {
  try {
    await work();
    showFilterError(null);
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
  } catch (error) {
    if (error instanceof FilterError) showFilterError(error);
    else setStatus(`error: ${error.message}`);
  }
}

function filterValue() {
  const input = document.getElementById("filter");
  return input ? input.value.trim() : "";
}

function selectionParams() {  // the filter and the group every data request carries
  const chosen = {};
  if (filterValue()) chosen.filter = filterValue();
  const group = document.getElementById("group").value;
  if (group) chosen.group = group;
  return chosen;
}

async function startGroups(refresh) {
  const select = document.getElementById("group");
  const wanted = params().get("group") || "";
  if (wanted) {  // shown at once; the list below confirms it
    select.appendChild(el("option", wanted)).value = wanted;
    select.value = wanted;
  }
  select.addEventListener("change", () => { setParams({ group: select.value }); refresh(); });
  try {
    const body = await getJSON("/api/groups");
    clear(select).appendChild(el("option", "all traces")).value = "";
    for (const group of body.groups) {
      const option = el("option", group.name);
      option.value = group.name;
      option.title = group.filter;
      select.appendChild(option);
    }
    select.value = wanted;
  } catch (error) {
    setStatus(`groups: ${error.message}`);
  }
}

// ------------------------------------------------------------------ service map

function nodeFilter(node) {
  if (node.type === "client" || node.type === "folded") return "";
  return `service(id(name: ${quoted(node.name)}, type: ${quoted(node.type)}))`;
}

function figureRows(figures) {
  if (!figures) return [["requests", "no traffic of its own"]];
  const rows = [
    ["requests", `${figures.requests} (${figures.requests_per_s.toFixed(2)}/s)`],
    ["ok", `${figures.ok} (${pct(figures.ok_rate)})`],
    ["error 4xx", `${figures.errors} (${pct(figures.error_rate)})`],
    ["fault 5xx", `${figures.faults} (${pct(figures.fault_rate)})`],
    ["throttle 429", `${figures.throttles} (${pct(figures.throttle_rate)})`],
    ["p50 / p90 / p99", `${ms(figures.p50_ms)} / ${ms(figures.p90_ms)} / ${ms(figures.p99_ms)}`],
    ["cold starts", `${figures.cold_starts} (${pct(figures.cold_start_rate)})`],
  ];
  if (figures.stored_requests !== figures.requests) {  // head sampling kept only some of them
    rows.splice(1, 0, ["sampled", `${figures.stored_requests} stored; requests, rates and percentiles estimated from head sampling, failures counted in full`]);
  }
  return rows;
}

function mapSize(plot, figure) {  // one data unit a pixel: the box scrolls a bigger map
  const box = plot.parentElement;
  const meta = figure.layout.meta || { width_px: box.clientWidth, height_px: box.clientHeight };
  const width = Math.max(box.clientWidth - 2, meta.width_px);
  const height = Math.max(box.clientHeight - 2, meta.height_px);
  const spare = (width - meta.width_px) / 2;
  return {
    width, height, autosize: false,
    xaxis: Object.assign({}, figure.layout.xaxis, { range: [-spare, meta.width_px + spare] }),
    yaxis: Object.assign({}, figure.layout.yaxis, { range: [height, 0] }),
  };
}

function mapPage() {
  let body = null;
  let costs = null;  // the window's cost by node, asked when a panel first shows it
  let selected = params().get("selected");
  let focus = params().get("focus") || "";
  const panel = document.getElementById("panel");
  const viewSelect = document.getElementById("view");
  const clearFocus = document.getElementById("clear-focus");
  if (params().get("view")) viewSelect.value = params().get("view");

  function showFigures(node) {
    panel.appendChild(kvTable(figureRows(node.figures)));
    if (node.cold_start && node.cold_start.inits) {
      panel.appendChild(el("h3", "Cold starts"));
      panel.appendChild(kvTable([
        ["init p50 / p99", `${ms(node.cold_start.init_p50_ms)} / ${ms(node.cold_start.init_p99_ms)}`],
        ["share of p99 in init", pct(node.cold_start.p99_share)],
      ]));
    }
  }

  // What the node cost over the map's window (asked once a refresh, when a panel first wants it).
  function showCost(node, fn) {
    const section = el("div");
    section.id = "node-cost";
    panel.appendChild(section);
    costs = costs || getJSON("/ui/data/cost", Object.assign(windowParams(), selectionParams()));
    costs.then((report) => {
      const names = [node, fn].filter(Boolean).map((n) => `${n.name} ${n.type}`);
      const mine = report.entries.filter((e) => names.includes(`${e.name} ${e.type}`));
      if (!mine.length) return;
      const total = mine.reduce((sum, e) => sum + e.total, 0);
      const requests = Math.max(...mine.map((e) => e.requests));
      const hours = mine[0].per_hour ? mine[0].total / mine[0].per_hour : null;
      section.appendChild(el("h3", `Cost (${report.region} prices of ${report.prices_taken})`));
      section.appendChild(kvTable([
        ["this window", money(total, report.currency)],
        ["per million requests", requests ? money(total / requests * 1e6, report.currency) : "–"],
        ["per hour at this rate", hours ? money(total / hours, report.currency) : "–"],
        ["billed as", mine.flatMap((e) => e.items.map((i) => `${i.item} ${money(i.amount, report.currency)}`)).join(", ")],
      ]));
    }).catch(() => {});
  }

  function showNode(node) {
    clear(panel);
    panel.appendChild(el("h2", node.name));
    panel.appendChild(el("p", node.type + (node.inferred ? " (inferred: called, not instrumented)" : ""), "note"));
    const functionId = body.compact[node.id];
    const fn = functionId && body.map.nodes.find((n) => n.id === functionId);
    if (fn) panel.appendChild(el("h3", "Lambda service (invocations, throttles included)"));
    showFigures(node);
    if (fn) {
      panel.appendChild(el("h3", "λ function (the handler running)"));
      showFigures(fn);
    }
    showCost(node, fn);
    const throttles = body.map.throttle_sources.filter((s) => s.node === node.id);
    if (throttles.length) panel.appendChild(el("p", `throttles started here in ${throttles[0].traces} traces`, "note"));
    const filter = nodeFilter(node);
    if (filter) {
      const link = el("a", "traces through this node");
      link.href = `/traces?${new URLSearchParams(Object.assign({ filter, range: document.getElementById("range").value }, selectionParams().group ? { group: selectionParams().group } : {}))}`;
      link.id = "node-traces";
      panel.appendChild(link);
    }
    const histogram = body.histograms[node.id] || (fn && body.histograms[fn.id]);
    if (histogram) {
      const chart = el("div", null, "chart");
      chart.id = "node-histogram";
      panel.appendChild(chart);
      render(chart, histogram).then(() => {
        chart.on("plotly_selected", (event) => {
          if (!event || !event.range || !filter) return;
          const [low, high] = event.range.x;
          const range = `responsetime >= ${(low / 1000).toFixed(4)} AND responsetime <= ${(high / 1000).toFixed(4)}`;
          const target = `${filter} { ${range} }`;
          window.location.assign(`/traces?${new URLSearchParams({ filter: target })}`);
        });
      });
    }
  }

  function showEdge(edge) {
    const names = Object.fromEntries(body.map.nodes.map((n) => [n.id, n.name]));
    clear(panel);
    panel.appendChild(el("h2", `${names[edge.source]} → ${names[edge.target]}`));
    panel.appendChild(el("p", edge.is_async ? "asynchronous" : "synchronous", "note"));
    panel.appendChild(kvTable(figureRows(edge.figures)));
    if (edge.event_age) {
      panel.appendChild(el("h3", "Event age (time in the queue)"));
      panel.appendChild(kvTable([["p50 / p90 / p99",
        `${ms(edge.event_age.p50_ms)} / ${ms(edge.event_age.p90_ms)} / ${ms(edge.event_age.p99_ms)}`]]));
    }
    const link = el("a", "traces over this edge");
    link.href = `/traces?${new URLSearchParams({ filter: `edge(${quoted(names[edge.source])}, ${quoted(names[edge.target])})` })}`;
    panel.appendChild(link);
  }

  function showSelected() {
    if (!body || !selected) return;
    const [kind, id] = selected.split(":");
    const found = kind === "edge" ? body.map.edges.find((e) => e.id === id) : body.map.nodes.find((n) => n.id === id);
    if (!found) return;
    if (kind === "edge") showEdge(found); else showNode(found);
  }

  function setFocus(id) {
    focus = id;
    setParams({ focus });
    refresh();
  }

  async function refresh() {
    await guarded(async () => {
      const query = Object.assign(windowParams(), selectionParams());
      if (viewSelect.value !== "compact") query.view = viewSelect.value;
      if (focus) query.focus = focus;
      body = await getJSON("/ui/data/map", query);
      costs = null;
      mark("map data received");
      const plot = document.getElementById("map");
      await render(plot, body.figure, mapSize(plot, body.figure));
      mark("map drawn");
      clearFocus.hidden = !body.focus;
      const notes = [];
      if (!body.map.nodes.length) notes.push("No traffic in this window yet.");
      if (body.map.folded_nodes) notes.push(`${body.map.folded_nodes} quieter nodes are folded into one.`);
      if (body.map.truncated) notes.push("Too many distinct hops: the map shows the busiest.");
      if (body.focus) notes.push("Focus: what is on a path through the node; click it again or Show all to leave.");
      document.getElementById("map-note").textContent = notes.join(" ");
      if (!plot.dataset.wired) {
        plot.dataset.wired = "1";
        plot.on("plotly_click", (event) => {
          const point = event.points && event.points[0];
          if (!point || !Array.isArray(point.customdata)) return;
          selected = `${point.customdata[0]}:${point.customdata[1]}`;
          setParams({ selected });
          showSelected();
          if (point.customdata[0] === "node") setFocus(point.customdata[1] === focus ? "" : point.customdata[1]);
        });
      }
      showSelected();
    });
  }

  viewSelect.addEventListener("change", () => { setParams({ view: viewSelect.value === "compact" ? null : viewSelect.value }); refresh(); });
  clearFocus.addEventListener("click", () => setFocus(""));
  document.addEventListener("keydown", (event) => { if (event.key === "Escape" && focus) setFocus(""); });
  let resizing = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => { if (body) render("map", body.figure, mapSize(document.getElementById("map"), body.figure)); }, 150);
  });
  startControls(refresh);
  refresh();
}

// ------------------------------------------------------------------ traces

function flagsOf(trace) {
  return ["fault", "error", "throttle"].filter((name) => trace[name]);
}

function tracesPage() {
  let traces = [];
  let picked = [];  // trace ids ticked to compare, two at most
  const compareButton = document.getElementById("compare-traces");
  compareButton.addEventListener("click", () => {
    window.location.assign(`/compare?${new URLSearchParams({ a: picked[0], b: picked[1] })}`);
  });
  let sortKey = "start_ns";
  let descending = true;

  function sortValue(trace, key) {
    if (key === "root") return `${trace.root_service} ${trace.root_name}`;
    if (key === "flags") return flagsOf(trace).join(",");
    return trace[key] === null ? -1 : trace[key];
  }

  function drawTable() {
    const tbody = clear(document.querySelector("#traces-table tbody"));
    const rows = traces.slice().sort((a, b) => {
      const x = sortValue(a, sortKey);
      const y = sortValue(b, sortKey);
      return (x < y ? -1 : x > y ? 1 : 0) * (descending ? -1 : 1);
    });
    for (const trace of rows) {
      const tr = document.createElement("tr");
      tr.dataset.traceId = trace.trace_id;
      const pick = el("td");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.className = "pick";
      box.checked = picked.includes(trace.trace_id);
      box.addEventListener("change", () => {
        picked = picked.filter((id) => id !== trace.trace_id);
        if (box.checked) picked.push(trace.trace_id);
        if (picked.length > 2) picked = picked.slice(-2);  // the two ticked last
        drawTable();
      });
      pick.appendChild(box);
      tr.appendChild(pick);
      const time = el("td");
      const link = el("a", new Date(trace.start_ns / 1e6).toISOString().slice(11, 23));
      link.href = `/traces/${trace.trace_id}`;
      time.appendChild(link);
      tr.appendChild(time);
      tr.appendChild(el("td", `${trace.root_service} · ${trace.root_name}`));
      tr.appendChild(el("td", trace.trace_duration_ms.toFixed(1)));
      tr.appendChild(el("td", trace.http_status === null ? "–" : trace.http_status));
      const flags = el("td");
      const names = flagsOf(trace);
      for (const name of names.length ? names : ["ok"]) flags.appendChild(el("span", name, `flag ${name}`));
      tr.appendChild(flags);
      const cold = el("td");
      if (trace.cold_start) cold.appendChild(el("span", "cold", "flag cold"));
      tr.appendChild(cold);
      tr.appendChild(el("td", trace.span_count));
      tbody.appendChild(tr);
    }
    compareButton.disabled = picked.length !== 2;
  }

  for (const th of document.querySelectorAll("#traces-table th[data-key]")) {
    th.addEventListener("click", () => {
      descending = th.dataset.key === sortKey ? !descending : true;
      sortKey = th.dataset.key;
      drawTable();
    });
  }

  async function refresh() {
    await guarded(async () => {
      const query = Object.assign(windowParams(), selectionParams());
      const body = await getJSON("/ui/data/traces", query);
      traces = body.traces;
      document.getElementById("traces-count").textContent =
        `${traces.length} traces${traces.length >= body.limit ? " (the newest; narrow the filter or window)" : ""}`;
      await render("traces-histogram", body.histogram);
      drawTable();
    });
  }

  startControls(refresh);
  refresh();
}

// ------------------------------------------------------------------ one trace

function tracePage() {
  const traceId = document.body.dataset.traceId;
  document.getElementById("trace-id").textContent = traceId;
  let spans = [];
  let cost = null;  // what the trace cost, by span
  let logs = [];  // its log records, by time (collector/query/trace_logs.py)
  let traceStartNs = 0;
  const panel = document.getElementById("span-panel");

  function logTable(records, withSpan) {  // every text set as textContent: a record's body is inert
    const table = el("table");
    table.className = "logs";
    for (const record of records) {
      const row = document.createElement("tr");
      row.appendChild(el("td", `+${ms((record.time_ns - traceStartNs) / 1e6)}`));
      row.appendChild(el("td", record.severity || ""));
      if (withSpan) {
        const span = spans.find((s) => s.span_id === record.span_id);
        const cell = el("td", span ? `${span.service} · ${span.name}` : record.service);
        if (span) { cell.className = "link"; cell.addEventListener("click", () => showSpan(span)); }
        row.appendChild(cell);
      }
      row.appendChild(el("td", record.body || ""));
      table.appendChild(row);
    }
    return table;
  }

  function spanCost(span) {  // what this span was billed for, when it was (collector/cost)
    const entry = cost && cost.entries.find((e) => e.name === span.span_id);
    if (!entry) return null;
    return `${money(entry.total, cost.currency)} (${entry.items.map((i) => `${i.item} × ${+i.quantity.toFixed(6)}`).join(", ")})`;
  }

  function showSpan(span) {
    clear(panel);
    panel.appendChild(el("h2", `${span.service} · ${span.name}`));
    const flags = flagsOf(span);
    if (span.cold_start) flags.push("cold start");
    panel.appendChild(kvTable([
      ["span id", span.span_id], ["trace id", span.trace_id], ["parent", span.parent_span_id],
      ["kind", span.kind], ["duration", ms(span.duration_ms)], ["status", `${span.status_code} ${span.status_message || ""}`],
      ["flags", flags.join(", ") || "ok"], ["origin", span.origin],
      ["target", span.target ? `${span.target.type} ${span.target.name}` : null],
      ["http", span.http && span.http.method ? `${span.http.method} ${span.http.url || span.http.route || ""} → ${span.http.status}` : null],
      ["cost", spanCost(span)],
    ]));
    const own = logs.filter((record) => record.span_id === span.span_id);
    if (own.length) { panel.appendChild(el("h3", `Logs (${own.length})`)); panel.appendChild(logTable(own, false)); }
    const annotations = Object.entries(span.annotations || {});
    if (annotations.length) { panel.appendChild(el("h3", "Annotations")); panel.appendChild(kvTable(annotations)); }
    const attributes = Object.entries(span.attributes || {});
    const metadata = attributes.filter(([key]) => key.startsWith("fluoro.metadata."));
    const plain = attributes.filter(([key]) => !key.startsWith("fluoro.metadata."));
    if (metadata.length) {
      panel.appendChild(el("h3", "Metadata"));
      panel.appendChild(kvTable(metadata.map(([k, v]) => [k.slice("fluoro.metadata.".length), typeof v === "string" ? v : JSON.stringify(v)])));
    }
    if (plain.length) {
      panel.appendChild(el("h3", "Attributes"));
      panel.appendChild(kvTable(plain.map(([k, v]) => [k, typeof v === "string" ? v : JSON.stringify(v)])));
    }
    for (const event of span.events || []) {
      if (event.name !== "exception") continue;
      const attrs = event.attributes || {};
      panel.appendChild(el("h3", `Exception: ${attrs["exception.type"] || ""}`));
      panel.appendChild(el("p", attrs["exception.message"] || ""));
      if (attrs["exception.stacktrace"]) panel.appendChild(el("pre", attrs["exception.stacktrace"]));
    }
    if ((span.links || []).length) {
      panel.appendChild(el("h3", "Links"));
      const list = el("ul");
      for (const link of span.links) {
        const item = el("li");
        const anchor = el("a", `${link.trace_id} / ${link.span_id}`);
        anchor.href = `/traces/${link.trace_id}`;
        item.appendChild(anchor);
        list.appendChild(item);
      }
      panel.appendChild(list);
    }
  }

  // How each service's part of the trace was kept (collector/query/trace_keeping.py).
  function keptText(kept) {
    const parts = kept.map((k) => {
      if (k.how === "tail") return `${k.service} by tail-keep (${k.reason.replace("_", " ")})`;
      if (k.how === "head") return `${k.service} by head sampling${k.one_in ? `, 1 in ${k.one_in}` : ""}`;
      return null;
    }).filter((text) => text !== null);
    return parts.length ? `Kept: ${parts.join("; ")}` : "";
  }

  async function refresh() {
    await guarded(async () => {
      const body = await getJSON(`/ui/data/trace/${encodeURIComponent(traceId)}`);
      spans = body.spans;
      logs = body.logs.logs;
      traceStartNs = Math.min(...spans.map((s) => s.start_ns));
      const services = [...new Set(spans.map((s) => s.service))];
      document.getElementById("trace-summary").textContent =
        `${body.own_span_count} spans in this trace, ${spans.length - body.own_span_count} in linked traces; services: ${services.join(", ")}`;
      document.getElementById("trace-kept").textContent = keptText(body.kept);
      cost = body.cost;
      document.getElementById("trace-cost").textContent = cost.entries.length
        ? `Cost of this trace: ${money(cost.total, cost.currency)} at ${cost.region} prices of ${cost.prices_taken} (click a span for its share)`
        : "";
      const plot = document.getElementById("waterfall");
      await render(plot, body.figure);
      if (!plot.dataset.wired) {
        plot.dataset.wired = "1";
        plot.on("plotly_click", (event) => {
          const point = event.points && event.points[0];
          const span = point && spans.find((s) => s.span_id === point.customdata);
          if (span) showSpan(span);
        });
      }
      const path = clear(document.getElementById("critical-path"));
      const byId = Object.fromEntries(spans.map((s) => [s.span_id, s]));
      for (const spanId of body.critical_path) {
        const span = byId[spanId];
        if (span) path.appendChild(el("li", `${span.service} · ${span.name} (${ms(span.duration_ms)})`));
      }
      const logSection = clear(document.getElementById("trace-logs"));
      if (logs.length) {
        logSection.appendChild(el("h2", `Logs (${logs.length}${body.logs.truncated ? ", the first" : ""})`));
        logSection.appendChild(logTable(logs, true));
      }
      document.getElementById("raw").textContent = JSON.stringify(spans, null, 2);
    });
  }

  document.getElementById("live").checked = false;  // a finished trace does not change
  startControls(refresh);
  refresh();
}

// ------------------------------------------------------------------ analytics

function analyticsPage() {
  const nodeSelect = document.getElementById("node");
  const compareSelect = document.getElementById("compare");
  const current = params();
  if (current.get("compare")) compareSelect.value = current.get("compare");

  function fillTable(table, header, rows) {
    clear(table);
    const head = document.createElement("tr");
    for (const name of header) head.appendChild(el("th", name));
    table.appendChild(head);
    for (const row of rows) {
      const tr = document.createElement("tr");
      for (const cell of row) tr.appendChild(el("td", cell));
      table.appendChild(tr);
    }
  }

  function comparisonRows(comparison) {
    const keys = ["requests", "error_rate", "fault_rate", "throttle_rate", "p50_ms", "p90_ms", "p99_ms"];
    const show = (key, value) => (value === null || value === undefined ? "–" : key.endsWith("_rate") ? pct(value) : key.endsWith("_ms") ? ms(value) : value);
    if (!comparison.a) return (comparison.groups || []).map((g) => [g.label, ...keys.map((k) => show(k, g[k]))]);
    return [
      [comparison.a.label, ...keys.map((k) => show(k, comparison.a[k]))],
      [comparison.b.label, ...keys.map((k) => show(k, comparison.b[k]))],
      ["change", ...keys.map((k) => show(k, comparison.delta[k]))],
    ];
  }

  async function refresh() {
    await guarded(async () => {
      const [name, type] = (nodeSelect.value || "|").split("|");
      const query = Object.assign(windowParams(), selectionParams(), { compare: compareSelect.value });
      if (name) Object.assign(query, { node: name, node_type: type });
      const body = await getJSON("/ui/data/analytics", query);
      for (const key of ["requests", "rates", "latency", "cold"]) await render(`chart-${key}`, body.figures[key]);
      const chosen = nodeSelect.value || current.get("node") || "";
      clear(nodeSelect).appendChild(el("option", "all incoming requests"));
      nodeSelect.firstChild.value = "";
      for (const node of body.nodes) {
        const option = el("option", `${node.name} (${node.type})`);
        option.value = `${node.name}|${node.type}`;
        nodeSelect.appendChild(option);
      }
      nodeSelect.value = chosen;
      fillTable(document.getElementById("comparison"),
        ["", "requests", "error", "fault", "throttle", "p50", "p90", "p99"], comparisonRows(body.comparison));
      // the chart's nodes: the selection and what it reaches, every one that cold started
      fillTable(document.getElementById("cold-starts"),
        ["function", "cold starts", "rate", "init p50", "init p99", "share of p99"],
        body.cold_nodes.map((n) => [n.name, n.figures.cold_starts, pct(n.figures.cold_start_rate),
          ms(n.cold_start && n.cold_start.init_p50_ms), ms(n.cold_start && n.cold_start.init_p99_ms),
          pct(n.cold_start && n.cold_start.p99_share)]));
      fillTable(document.getElementById("throttles"), ["source", "type", "throttled traces"],
        body.throttle_sources.map((s) => [s.name, s.type, s.traces]));
    });
  }

  document.getElementById("analytics-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setParams({ node: nodeSelect.value, compare: compareSelect.value, filter: filterValue() });
    refresh();
  });
  if (current.get("node")) {
    const option = el("option", current.get("node"));
    option.value = current.get("node");
    nodeSelect.appendChild(option);
    nodeSelect.value = current.get("node");
  }
  startControls(refresh);
  refresh();
}

// ------------------------------------------------------------------ two traces compared

function comparePage() {
  const query = params();
  const ids = { a: query.get("a") || "", b: query.get("b") || "" };
  for (const side of ["a", "b"]) {
    const link = document.getElementById(`compare-${side}`);
    link.textContent = ids[side];
    link.href = `/traces/${encodeURIComponent(ids[side])}`;
  }
  function flags(span) {
    if (!span) return "";
    return ["fault", "error", "throttle", "cold_start"].filter((f) => span[f]).join(", ");
  }
  async function refresh() {
    await guarded(async () => {
      const body = await getJSON("/ui/data/compare", ids);
      document.getElementById("compare-summary").textContent =
        `A took ${ms(body.a_duration_ms)}, B ${ms(body.b_duration_ms)}; ${body.only_in_a} spans only in A, ${body.only_in_b} only in B`;
      const tbody = clear(document.querySelector("#compare-table tbody"));
      for (const row of body.rows) {
        const tr = document.createElement("tr");
        tr.className = row.a && row.b ? "both" : row.a ? "only-a" : "only-b";
        const label = el("td", `${row.service} · ${row.name}`);
        label.style.paddingLeft = `${0.5 + Math.min(row.depth, 40) * 1.1}rem`;
        tr.appendChild(label);
        tr.appendChild(el("td", row.a ? row.a.duration_ms.toFixed(1) : "only in B"));
        tr.appendChild(el("td", row.b ? row.b.duration_ms.toFixed(1) : "only in A"));
        const delta = el("td", row.delta_ms === null ? "–" : `${row.delta_ms > 0 ? "+" : ""}${row.delta_ms.toFixed(1)}`);
        if (row.delta_ms !== null && row.a && Math.abs(row.delta_ms) >= Math.max(1, 0.2 * row.a.duration_ms)) {
          delta.className = row.delta_ms > 0 ? "slower" : "faster";
        }
        tr.appendChild(delta);
        tr.appendChild(el("td", flags(row.a)));
        tr.appendChild(el("td", flags(row.b)));
        tbody.appendChild(tr);
      }
    });
  }
  document.getElementById("live").checked = false;  // finished traces do not change
  startControls(refresh);
  refresh();
}

// ------------------------------------------------------------------ insights

function insightsPage() {
  function timeOf(ns) { return ns === null || ns === undefined ? "ongoing" : new Date(ns / 1e6).toISOString().slice(0, 19).replace("T", " "); }

  async function refresh() {
    await guarded(async () => {
      const query = Object.assign(windowParams(), selectionParams());
      const body = await getJSON("/ui/data/insights", query);
      await render("insights-timeline", body.figure);
      const open = body.insights.filter((i) => i.state === "open").length;
      document.getElementById("insights-count").textContent =
        body.insights.length ? `${body.insights.length} insights, ${open} open` : "No insights in this window: every node as usual.";
      const tbody = clear(document.querySelector("#insights-table tbody"));
      for (const insight of body.insights) {
        const tr = document.createElement("tr");
        tr.dataset.insightId = insight.id;
        tr.appendChild(el("td", insight.state, `flag ${insight.state === "open" ? "fault" : "ok"}`));
        tr.appendChild(el("td", insight.kind));
        tr.appendChild(el("td", `${insight.root_cause.name} (${insight.root_cause.type})`));
        tr.appendChild(el("td", [...new Set(insight.impacted.map((n) => n.name))].join(", ")));  // a Lambda's two nodes, once
        tr.appendChild(el("td", timeOf(insight.start_ns)));
        tr.appendChild(el("td", timeOf(insight.end_ns)));
        tr.appendChild(el("td", `${insight.failures} of ${insight.requests} (${pct(insight.share)}), ${insight.traces} traces`));
        tr.appendChild(el("td", pct(insight.baseline_share)));
        const cell = el("td");
        const link = el("a", "affected traces");
        const start = (insight.start_ns / 1e9 - 60).toFixed(0);
        const end = ((insight.end_ns || Date.now() * 1e6) / 1e9 + 60).toFixed(0);
        const target = { filter: insight.traces_filter, range: "custom", start, end };
        if (insight.group) target.group = insight.group;
        link.href = `/traces?${new URLSearchParams(target)}`;
        cell.appendChild(link);
        tr.appendChild(cell);
        tbody.appendChild(tr);
      }
    });
  }

  startControls(refresh);
  refresh();
}

// ------------------------------------------------------------------ start

const PAGES = {
  map: mapPage, traces: tracesPage, trace: tracePage, analytics: analyticsPage, insights: insightsPage, compare: comparePage,
};

document.addEventListener("DOMContentLoaded", () => {
  mark("scripts ready");
  const page = document.body.dataset.page;
  const nav = document.getElementById(`nav-${page === "trace" || page === "compare" ? "traces" : page}`);
  if (nav) nav.classList.add("active");
  if (PAGES[page]) PAGES[page]();
});
