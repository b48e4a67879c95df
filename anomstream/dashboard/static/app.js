// anomstream dashboard: applies the server's frames (server-sent events) and draws them with uPlot.
// The server aggregates; this page only merges snapshots and deltas and renders a few times a second.
"use strict";

const SEVERITIES = ["low", "medium", "high", "critical"];
const POINTS_WINDOW_S = 60;
const RATE_POINTS = 300;
const MAX_ALERTS = 400;
const SHOWN_ALERTS = 60;
const MAX_TIMELINE = 200;
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const C = {
  normal: css("--normal"), anomaly: css("--anomaly"), unlabelled: css("--unlabelled"),
  threshold: css("--threshold"), in: css("--in"), scored: css("--scored"),
  muted: css("--muted"), line: css("--line"), text: css("--text"),
};

// Everything the page knows; exposed for the browser test and for curious operators (devtools).
const state = {
  frames: 0, snapshots: 0, firstFrameAt: null, lastFrameAt: null, seq: 0, arrivals: [],
  selected: null, streams: {}, production: {}, status: {}, counts: {}, histEdges: [],
  points: {}, rates: {}, alerts: [], timeline: [],
  verdicts: {}, pendingVerdicts: new Set(),  // analysts' verdicts by alert_id (or incident id); those being sent
  time: null,  // the server's clock at the last frame (epoch s): the chart's window when it has no point
  incidents: [], incidentAlerts: {}, openIncident: null,  // the board; alerts fetched per incident; the one shown
};
window.anomstream = state;

// -- formatting --------------------------------------------------------------------------------
const nf0 = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const fmtInt = (v) => (v === null || v === undefined ? "–" : nf0.format(v));
const fmtRatio3 = (v) => (v === null || v === undefined ? "–" : v.toFixed(3));
const fmtScore = (v) => (v === null || v === undefined ? "–" : Math.abs(v) >= 0.01 && Math.abs(v) < 1e4 ? v.toFixed(4) : v.toExponential(2));
const fmtTimes = (r) => (r >= 1 ? `${r >= 100 ? r.toFixed(0) : r.toFixed(1)}×` : `${r.toPrecision(2)}×`);
function fmtClock(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleTimeString("en-GB", { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
}
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("data-")) node.setAttribute(k, String(v));
    else node[k] = v;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
  return node;
}
const labelClass = (label) => (label === null || label === undefined ? "" : ["normal", "0", "0.0", "false", "False"].includes(label) ? "label-normal" : "label-anomaly");

// -- charts ------------------------------------------------------------------------------------
const axis = (extra = {}) => ({ stroke: C.muted, grid: { stroke: C.line, width: 1 }, ticks: { stroke: C.line, width: 1 }, ...extra });
const dots = (label, color) => ({
  label, stroke: color, fill: color, paths: () => null,
  points: { show: true, space: 0, size: 4, width: 0, fill: color, stroke: color },
});
const size = (id) => {
  const node = document.getElementById(id);
  return { width: Math.max(node.clientWidth, 200), height: node.clientHeight || 240 };
};

function makeScoreChart() {
  const { width, height } = size("score-chart");
  return new uPlot({
    width, height: height - 30,
    // The last minute of event time, the newest point at the right edge; with no point (nothing
    // scored yet, or a stream that ended over a minute ago) the minute up to the server's clock,
    // never epoch 0.
    scales: { x: { time: true, range: (u, min, max) => {
      const end = max ?? state.time ?? Date.now() / 1000;
      return [end - POINTS_WINDOW_S, end];
    } }, y: { distr: 3, log: 10 } },
    legend: { live: false },
    cursor: { show: false },
    series: [
      {},
      dots("normal", C.normal),
      dots("anomalous", C.anomaly),
      dots("unlabelled", C.unlabelled),
      { label: "threshold", stroke: C.threshold, width: 1.5, dash: [6, 4], spanGaps: true, points: { show: false } },
    ],
    axes: [axis(), axis({ size: 60, values: (u, splits) => splits.map((v) => (v === null ? "" : v.toExponential(0))) })],
  }, [[], [], [], [], []], document.getElementById("score-chart"));
}

function makeHistChart() {
  const { width, height } = size("hist-chart");
  const alpha = (c) => c + "55";
  const stepped = uPlot.paths.stepped({ align: 1 });
  const area = (label, color) => ({ label, stroke: color, fill: alpha(color), width: 1.5, paths: stepped, points: { show: false } });
  return new uPlot({
    width, height: height - 30,
    scales: { x: { time: false, range: [-3, 3] }, y: { range: (u, min, max) => [0, Math.max(max || 0, 0.05) * 1.1] } },
    legend: { live: false },
    cursor: { show: false },
    series: [{}, area("normal", C.normal), area("anomalous", C.anomaly), area("unlabelled", C.unlabelled)],
    axes: [
      axis({ splits: () => [-3, -2, -1, 0, 1, 2, 3], values: (u, splits) => splits.map((v) => fmtTimes(10 ** v)) }),
      axis({ size: 52, values: (u, splits) => splits.map((v) => `${Math.round(v * 100)}%`) }),
    ],
    hooks: {
      draw: [(u) => {
        const x = u.valToPos(0, "x", true);
        const { ctx } = u;
        ctx.save();
        ctx.strokeStyle = C.threshold;
        ctx.setLineDash([6, 4]);
        ctx.lineWidth = 1.5 * devicePixelRatio;
        ctx.beginPath();
        ctx.moveTo(x, u.bbox.top);
        ctx.lineTo(x, u.bbox.top + u.bbox.height);
        ctx.stroke();
        ctx.fillStyle = C.threshold;
        ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
        ctx.fillText("threshold", x + 4 * devicePixelRatio, u.bbox.top + 12 * devicePixelRatio);
        ctx.restore();
      }],
    },
  }, [[], [], [], []], document.getElementById("hist-chart"));
}

function makeThroughputChart() {
  const { width, height } = size("tp-chart");
  const line = (label, color) => ({ label, stroke: color, width: 1.5, spanGaps: true, points: { show: false } });
  return new uPlot({
    width, height: height - 30,
    scales: { x: { time: true }, y: { range: (u, min, max) => [0, Math.max(max || 0, 10) * 1.1] } },
    legend: { live: false },
    cursor: { show: false },
    series: [{}, line("in", C.in), line("scored", C.scored)],
    axes: [axis(), axis({ size: 56, space: 20, values: (u, splits) => splits.map((v) => (v >= 1000 ? `${(v / 1000).toFixed(v >= 10000 ? 0 : 1)}k` : v)) })],
  }, [[], [], []], document.getElementById("tp-chart"));
}

const charts = { score: makeScoreChart(), hist: makeHistChart(), tp: makeThroughputChart() };
Object.defineProperty(state, "charts", { value: charts, enumerable: false });  // for the browser test
window.addEventListener("resize", () => {
  for (const [key, id] of [["score", "score-chart"], ["hist", "hist-chart"], ["tp", "tp-chart"]]) {
    const { width, height } = size(id);
    charts[key].setSize({ width, height: height - 30 });
  }
});

// -- frames ------------------------------------------------------------------------------------
function apply(frame) {
  const full = frame.type === "snapshot";
  const now = performance.now();
  state.frames += 1;
  if (full) state.snapshots += 1;
  state.firstFrameAt ??= now;
  state.lastFrameAt = now;
  state.arrivals.push(now);
  while (state.arrivals.length && now - state.arrivals[0] > 5000) state.arrivals.shift();
  state.seq = frame.seq;
  state.streams = frame.streams;
  state.production = frame.production;
  state.status = frame.status;
  state.counts = frame.counts;
  state.histEdges = frame.hist_edges;
  state.time = frame.time;

  // Points are at their event time: a frame's may land before the last one's (partitions, a backlog),
  // so they are merged in order; the chart keeps the minute before the newest point, however old.
  for (const [name, sample] of Object.entries(frame.points)) {
    const thr = frame.streams[name]?.threshold ?? null;
    const pts = full || !state.points[name] ? (state.points[name] = { t: [], score: [], cls: [], thr: [] }) : state.points[name];
    if (full) Object.assign(pts, { t: [], score: [], cls: [], thr: [] });
    let ordered = true;
    for (let i = 0; i < sample.t.length; i++) {
      if (pts.t.length && sample.t[i] < pts.t[pts.t.length - 1]) ordered = false;
      pts.t.push(sample.t[i]); pts.score.push(sample.score[i]); pts.cls.push(sample.cls[i]); pts.thr.push(thr);
    }
    if (!ordered) {
      const order = pts.t.map((_, i) => i).sort((a, b) => pts.t[a] - pts.t[b]);
      for (const key of ["t", "score", "cls", "thr"]) pts[key] = order.map((i) => pts[key][i]);
    }
    const oldest = (pts.t.length ? pts.t[pts.t.length - 1] : frame.time) - POINTS_WINDOW_S;
    let drop = 0;
    while (drop < pts.t.length && pts.t[drop] < oldest) drop++;
    if (drop) for (const key of ["t", "score", "cls", "thr"]) pts[key].splice(0, drop);
  }
  for (const [name, rates] of Object.entries(frame.rates)) {
    const list = full || !state.rates[name] ? (state.rates[name] = []) : state.rates[name];
    for (const r of rates) if (!list.length || list[list.length - 1][0] < r[0]) list.push(r);
    if (list.length > RATE_POINTS) list.splice(0, list.length - RATE_POINTS);
  }
  state.alerts = full ? frame.alerts : frame.alerts.concat(state.alerts).slice(0, MAX_ALERTS);
  state.timeline = full ? frame.timeline : frame.timeline.concat(state.timeline).slice(0, MAX_TIMELINE);
  state.verdicts = full ? { ...frame.verdicts } : Object.assign(state.verdicts, frame.verdicts);
  if (frame.incidents) state.incidents = frame.incidents;  // a delta omits them when none changed
  scheduleRender();
}

let renderPending = false;
function scheduleRender() {
  if (renderPending) return;
  renderPending = true;
  requestAnimationFrame(() => { renderPending = false; render(); });
}

function activeStreams() {
  return Object.entries(state.streams)
    .filter(([name, s]) => s.scored > 0 || (s.end_offset ?? 0) > 0 || state.production[name])
    .map(([name]) => name);
}

function render() {
  const active = activeStreams();
  if (!state.selected || !active.includes(state.selected)) {
    state.selected = active.find((n) => state.streams[n].scored > 0) ?? active[0] ?? null;
  }
  renderHeader();
  renderVerdictControls();
  renderIncidents();
  renderStreams(active);
  renderScoreChart();
  renderHistogram();
  renderThroughput();
  renderAlerts(active);
  renderProduction(active);
  renderTimeline();
}

function renderHeader() {
  document.getElementById("broker").textContent = state.status.broker ?? "…";
  const ups = state.arrivals.length > 1 ? ((state.arrivals.length - 1) * 1000) / (state.arrivals[state.arrivals.length - 1] - state.arrivals[0]) : null;
  document.getElementById("ups").textContent = ups === null ? "–" : ups.toFixed(1);
  const c = state.counts;
  document.getElementById("read").textContent = `${fmtInt(c.score_records)} score records · ${fmtInt(c.alerts)} alerts`;
}

function renderStreams(active) {
  const body = document.querySelector("#streams tbody");
  const rows = active.map((name) => {
    const s = state.streams[name];
    const so = s.so_far, lm = s.last_minute;
    const model = s.model ? `${s.model.detector} v${s.model.version}` : "–";
    const minute = `${fmtRatio3(lm.precision)} / ${fmtRatio3(lm.recall)} / ${fmtRatio3(lm.f1)}`;
    const row = el("tr", { "data-stream": name, class: (name === state.selected ? "selected" : "") + (s.scored ? "" : " idle") },
      el("td", { "data-field": "stream" }, name),
      el("td", { "data-field": "model" }, model),
      el("td", { class: "num", "data-field": "in_rate" }, fmtInt(s.in_rate)),
      el("td", { class: "num", "data-field": "scored_rate" }, fmtInt(s.scored_rate)),
      el("td", { class: "num", "data-field": "lag" }, fmtInt(s.lag)),
      el("td", { class: "num", "data-field": "scored" }, fmtInt(s.scored)),
      el("td", { class: "num", "data-field": "alerts" }, fmtInt(s.alerts)),
      el("td", { class: "num", "data-field": "precision" }, fmtRatio3(so.precision)),
      el("td", { class: "num", "data-field": "recall" }, fmtRatio3(so.recall)),
      el("td", { class: "num", "data-field": "f1" }, fmtRatio3(so.f1)),
      el("td", { class: "num", "data-field": "last_minute" }, minute));
    row.addEventListener("click", () => { state.selected = name; scheduleRender(); });
    return row;
  });
  body.replaceChildren(...rows);
  document.getElementById("waiting").hidden = active.some((n) => state.streams[n].scored > 0);
}

function renderScoreChart() {
  const name = state.selected;
  document.getElementById("chart-stream").textContent = name ?? "–";
  const s = name ? state.streams[name] : null;
  document.getElementById("threshold").textContent = s && s.threshold !== null ? `${fmtScore(s.threshold)} (${s.threshold_source})` : "–";
  const pts = name ? state.points[name] : null;
  if (!pts) { charts.score.setData([[], [], [], [], []]); return; }
  const n = pts.t.length;
  const series = [new Array(n).fill(null), new Array(n).fill(null), new Array(n).fill(null)];
  for (let i = 0; i < n; i++) series[pts.cls[i]][i] = pts.score[i];
  charts.score.setData([pts.t, ...series, pts.thr]);
}

function renderHistogram() {
  const s = state.selected ? state.streams[state.selected] : null;
  const edges = state.histEdges;
  if (!s || !s.hist || !edges.length) { charts.hist.setData([[], [], [], []]); return; }
  const shares = s.hist.map((counts) => {
    const total = counts.reduce((a, b) => a + b, 0);
    const share = counts.map((c) => (total ? c / total : null));
    return share.concat([share[share.length - 1]]);  // the last step ends at the last edge
  });
  charts.hist.setData([edges, ...shares]);
}

function renderThroughput() {
  const name = state.selected;
  document.getElementById("tp-stream").textContent = name ?? "–";
  const rates = (name && state.rates[name]) || [];
  charts.tp.setData([rates.map((r) => r[0]), rates.map((r) => r[1]), rates.map((r) => r[2])]);
}

function renderAlerts(active) {
  const streamSelect = document.getElementById("filter-stream");
  const known = new Set([...streamSelect.options].map((o) => o.value));
  for (const name of active) if (!known.has(name)) streamSelect.append(el("option", { value: name }, name));
  const stream = streamSelect.value;
  const minimum = SEVERITIES.indexOf(document.getElementById("filter-severity").value);
  const shown = state.alerts
    .filter((a) => (!stream || a.stream === stream) && SEVERITIES.indexOf(a.severity) >= minimum)
    .slice(0, SHOWN_ALERTS);
  const rows = shown.map((a) => {
    const ratio = a.threshold > 0 ? a.score / a.threshold : null;
    const features = a.top_features.map((f) => `${f.name} ${f.contribution.toPrecision(2)}`).join(", ");
    return el("tr", {
      class: "alert", "data-alert-id": a.alert_id, "data-stream": a.stream, "data-severity": a.severity,
      title: `event ${a.event_id} (event time ${a.event_time ?? "–"}) · ${a.source.topic}[${a.source.partition}]@${a.source.offset}`
        + (a.fields ? ` · ${Object.entries(a.fields).map(([k, v]) => `${k}=${v}`).join(", ")}` : ""),
    },
    el("td", { "data-field": "detected_at" }, fmtClock(a.detected_at)),
    el("td", { "data-field": "stream" }, a.stream),
    el("td", {}, el("span", { class: `sev sev-${a.severity}`, "data-field": "severity" }, a.severity)),
    el("td", { class: "num", "data-field": "score" }, `${fmtScore(a.score)} / ${fmtScore(a.threshold)}${ratio ? ` (${fmtTimes(ratio)})` : ""}`),
    el("td", { class: "features", "data-field": "top_features" }, features || "–"),
    el("td", { class: labelClass(a.label), "data-field": "label" }, a.label ?? "–"),
    el("td", { "data-field": "model" }, `${a.detector} v${a.model_version}`),
    ...(verdictsRefused() ? [] : [verdictCell(a.alert_id)]));
  });
  const body = document.querySelector("#alerts tbody");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colSpan: 8 }, "no alert yet"))]));
}

// -- verdicts ----------------------------------------------------------------------------------
// The server says who may give one (status.verdicts): "open" (localhost), "token" (the analysts'
// token goes with each verdict) or "refused" (listening beyond localhost with no token configured).
const verdictsRefused = () => state.status.verdicts === "refused";

// A verdict given (by anyone: every page shows it), or the two buttons; none where verdicts are
// refused (the banner says why, once).
function verdictCell(id, kind = "alert") {
  const given = kind === "alert" ? state.verdicts[id] : state.incidents.find((i) => i.id === id)?.verdict;
  if (given) {
    const why = given.reason ? `: ${given.reason}` : "";
    return el("td", { "data-field": "verdict", class: "col-verdict" },
      el("span", { class: `verdict verdict-${given.verdict}`, title: `${given.by} at ${given.given_at}${why}` }, given.verdict));
  }
  const target = kind === "alert" ? { "data-alert-id": id } : { "data-incident-id": id };
  const button = (verdict) => el("button", {
    type: "button", class: `vbtn vbtn-${verdict}`, "data-verdict": verdict, ...target,
    disabled: state.pendingVerdicts.has(id), title: `mark this ${kind} ${verdict}`,
  }, verdict);
  return el("td", { "data-field": "verdict", class: "col-verdict" }, button("benign"), button("malicious"));
}

function setVerdictStatus(text, failed = false) {
  const node = document.getElementById("verdict-status");
  node.textContent = text;
  node.className = failed ? "warn" : "hint";
}

async function giveVerdict(target, verdict) {
  const headers = { "Content-Type": "application/json" };
  const token = document.getElementById("analyst-token").value;
  if (token) headers.Authorization = `Bearer ${token}`;
  const id = target.alert_id ?? target.incident_id;
  const what = target.alert_id ? "alert" : "incident";
  const body = {
    ...target, verdict,
    by: document.getElementById("analyst").value.trim(),
    reason: document.getElementById("verdict-reason").value,
  };
  state.pendingVerdicts.add(id);
  scheduleRender();
  try {
    const answer = await fetch("/api/verdicts", { method: "POST", headers, body: JSON.stringify(body) });
    const given = await answer.json();
    if (!answer.ok) throw new Error(given.error || answer.statusText);
    const entry = { verdict: given.verdict, by: given.by, given_at: given.given_at, reason: given.reason };
    if (what === "alert") state.verdicts[id] = entry;
    else for (const incident of state.incidents) if (incident.id === id) incident.verdict = entry;
    document.getElementById("verdict-reason").value = "";
    setVerdictStatus(`${given.verdict} on ${what} ${id.length > 16 ? id.slice(0, 16) + "…" : id} published`);
  } catch (error) {
    setVerdictStatus(`verdict not given: ${error.message}`, true);
  } finally {
    state.pendingVerdicts.delete(id);
    scheduleRender();
  }
}

function renderVerdictControls() {
  document.getElementById("token-field").hidden = state.status.verdicts !== "token";
  const refused = verdictsRefused();
  document.body.classList.toggle("verdicts-refused", refused);
  const banner = document.getElementById("verdicts-refused");
  banner.hidden = !refused;
  banner.textContent = refused
    ? "Verdicts are off: this dashboard listens beyond localhost and no analyst token is configured. " +
      "Set ANOMSTREAM_DASHBOARD__ANALYST_TOKEN and restart it to take verdicts from analysts."
    : "";
}

// Rows are redrawn a few times a second: one listener on each table, not one per button.
document.querySelector("#alerts tbody").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-verdict]");
  if (button && !button.disabled) giveVerdict({ alert_id: button.dataset.alertId }, button.dataset.verdict);
});
document.querySelector("#incidents tbody").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-verdict]");
  if (button && !button.disabled) giveVerdict({ incident_id: button.dataset.incidentId }, button.dataset.verdict);
  const toggle = event.target.closest("button[data-incident-alerts]");
  if (toggle) toggleIncidentAlerts(toggle.dataset.incidentAlerts);
});
for (const [id, store] of [["analyst", localStorage], ["analyst-token", sessionStorage]]) {
  const input = document.getElementById(id);
  input.value = store.getItem(`anomstream.${id}`) ?? "";
  input.addEventListener("change", () => store.setItem(`anomstream.${id}`, input.value));
}

// -- incidents ---------------------------------------------------------------------------------
// Times are OCSF's: epoch milliseconds. A time of another day shows its date.
function fmtSeen(ms) {
  if (ms === null || ms === undefined) return "–";
  const d = new Date(ms);
  const time = d.toLocaleTimeString("en-GB", { hour12: false });
  return d.toDateString() === new Date().toDateString() ? time : `${d.toLocaleDateString("en-CA")} ${time}`;
}

function shares(incident) {
  const parts = [];
  const fields = Object.entries(incident.group.fields || {}).map(([k, v]) => `${k}=${v}`);
  if (fields.length) parts.push(el("span", { class: "share-fields", "data-field": "group" }, fields.join(", ")));
  const top = incident.top_features.map((f) => `${f.name} ${Number(f.contribution).toPrecision(2)}`);
  const named = incident.group.features.filter((f) => !incident.top_features.some((t) => t.name === f));
  if (top.length || named.length) {
    parts.push(el("span", { class: "share-features", "data-field": "top_features" }, [...top, ...named].join(", ")));
  }
  return parts.length ? parts : ["–"];
}

function labelMix(labels) {
  if (!labels) return "–";
  return Object.entries(labels).sort((a, b) => b[1] - a[1]).map(([label, n]) => `${label} ${fmtInt(n)}`).join(" · ");
}

let incidentsDrawn = null;
function renderIncidents() {
  const refused = verdictsRefused();
  // Redrawn only when something shown changed: incidents change every few seconds, frames come
  // twice a second, and a row redrawn under the pointer loses the click.
  const key = JSON.stringify([state.incidents, state.openIncident, state.incidentAlerts[state.openIncident] ?? null,
    [...state.pendingVerdicts], refused, new Date().toDateString()]);
  if (key === incidentsDrawn) return;
  incidentsDrawn = key;
  const rows = [];
  for (const i of state.incidents) {
    const row = el("tr", {
      class: `incident ${i.open ? "open" : "closed"}`, "data-incident-id": i.id, "data-severity": i.severity,
      title: `${i.id} · revision ${i.revision}${i.model ? ` · ${i.stream} ${i.model}` : ""}`,
    },
    el("td", {}, el("span", { class: `sev sev-${i.severity}`, "data-field": "severity" }, i.severity || "–")),
    el("td", { class: "incident-title" },
      el("div", { "data-field": "title" }, i.title || i.message),
      el("div", { class: "muted small", "data-field": "id" }, `${i.id}${i.stream ? ` · ${i.stream}` : ""}`)),
    el("td", { class: "num", "data-field": "count" }, fmtInt(i.count)),
    el("td", { "data-field": "first_seen" }, fmtSeen(i.first_seen)),
    el("td", { "data-field": "last_seen" }, fmtSeen(i.last_seen)),
    el("td", { class: "shares" }, ...shares(i)),
    el("td", { class: "labels", "data-field": "labels" }, labelMix(i.labels)),
    el("td", { "data-field": "status" }, i.open ? (i.status || "open") : "closed"),
    ...(refused ? [] : [verdictCell(i.id, "incident")]),
    el("td", {}, el("button", { type: "button", class: "ibtn", "data-incident-alerts": i.id },
      state.openIncident === i.id ? "hide alerts" : "alerts")));
    rows.push(row);
    if (state.openIncident === i.id) rows.push(incidentAlertsRow(i, refused ? 9 : 10));
  }
  const body = document.querySelector("#incidents tbody");
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { class: "empty", colSpan: 10 }, "no incident yet"))]));
  const open = state.incidents.filter((i) => i.open).length;
  document.getElementById("incident-status").textContent = state.incidents.length ? `${open} open · ${state.incidents.length - open} recent, closed` : "";
}

function incidentAlertsRow(incident, span) {
  const found = state.incidentAlerts[incident.id];
  let content;
  if (!found) content = el("p", { class: "hint" }, "reading its alerts…");
  else if (found.error) content = el("p", { class: "warn" }, found.error);
  else {
    const from = found.from === "sample" ? "a sample of its alerts (the incident's alert_ids)" : `its alerts on incident-members`;
    const rows = found.alerts.map((a) => el("tr", { class: "member", "data-alert-id": a.alert_id },
      el("td", { "data-field": "detected_at" }, a.found === false ? "–" : fmtClock(a.detected_at)),
      el("td", {}, a.severity ? el("span", { class: `sev sev-${a.severity}` }, a.severity) : "–"),
      el("td", { class: "num" }, a.found === false ? "–" : `${fmtScore(a.score)} / ${fmtScore(a.threshold)}`),
      el("td", { class: "features" }, a.top_features ? a.top_features.map((f) => f.name).join(", ") : "not found on the alerts topic"),
      el("td", { class: labelClass(a.label), "data-field": "label" }, a.label ?? "–"),
      el("td", { class: "muted small" }, a.source ? `${a.source.topic}[${a.source.partition}]@${a.source.offset}` : a.alert_id)));
    content = el("div", {},
      el("p", { class: "hint" }, `${fmtInt(found.members)} alerts; ${from}${found.alerts.length < found.members ? `, the newest ${found.alerts.length} shown` : ""}`),
      el("table", { class: "grid members" }, el("tbody", {}, ...rows)));
  }
  return el("tr", { class: "incident-alerts", "data-incident-id": incident.id }, el("td", { colSpan: span }, content));
}

async function toggleIncidentAlerts(id) {
  if (state.openIncident === id) { state.openIncident = null; scheduleRender(); return; }
  state.openIncident = id;
  delete state.incidentAlerts[id];
  scheduleRender();
  try {
    const answer = await fetch(`/api/incidents/${encodeURIComponent(id)}/alerts`);
    const found = await answer.json();
    state.incidentAlerts[id] = answer.ok ? found : { error: found.error || answer.statusText };
  } catch (error) {
    state.incidentAlerts[id] = { error: `its alerts could not be read: ${error.message}` };
  }
  scheduleRender();
}

function renderProduction(active) {
  const names = [...new Set([...Object.keys(state.production), ...active])].sort();
  const items = names.map((name) => {
    const prod = state.production[name];
    const scoring = state.streams[name]?.model;
    const item = el("li", { "data-stream": name, "data-version": prod?.version });
    item.append(el("b", {}, name), ": ");
    if (prod) item.append(`${prod.detector} v${prod.version}`, el("span", { class: "muted" }, ` since ${fmtClock(prod.since)} (${prod.reason})`));
    else item.append(el("span", { class: "muted" }, "no production model"));
    if (prod && scoring && (scoring.detector !== prod.detector || scoring.version !== prod.version)) {
      item.append(el("span", { class: "warn" }, ` · workers still on ${scoring.detector} v${scoring.version}`));
    }
    return item;
  });
  document.getElementById("production").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "no model yet")]));
}

function renderTimeline() {
  const items = state.timeline.map((e) => el("li", {
    class: `tl-item tl-${e.kind}`, "data-kind": e.kind, "data-stream": e.stream, "data-version": e.version,
  },
  el("div", {}, el("span", { class: "tl-time" }, fmtClock(e.time)), el("span", { class: "tl-kind" }, e.kind)),
  el("div", { class: "tl-title" }, e.title),
  el("div", { class: "tl-detail" }, e.detail)));
  document.getElementById("timeline").replaceChildren(...(items.length ? items : [el("li", { class: "empty" }, "no drift event or model change yet")]));
}

for (const id of ["filter-stream", "filter-severity"]) document.getElementById(id).addEventListener("change", scheduleRender);

// -- the connection ----------------------------------------------------------------------------
function connect() {
  const conn = document.getElementById("conn");
  const source = new EventSource("/events");
  const onFrame = (event) => apply(JSON.parse(event.data));
  source.addEventListener("snapshot", onFrame);
  source.addEventListener("delta", onFrame);
  source.onopen = () => { conn.textContent = "live"; conn.className = "pill pill-live"; };
  source.onerror = () => {
    conn.textContent = source.readyState === EventSource.CLOSED ? "disconnected" : "reconnecting";
    conn.className = "pill " + (source.readyState === EventSource.CLOSED ? "pill-down" : "pill-wait");
  };
}
// The first frame came with the page (a script the load event waits for): drawn at once, so a
// screenshot taken at load shows the pipeline. The stream opens after the load event: it never
// ends, and nothing of it may hold the page's load back (a headless screenshot, a link preview and
// a test's page load all wait for that event).
if (window.anomstreamFirst) {
  apply(window.anomstreamFirst);
  delete window.anomstreamFirst;
  render();
}
if (document.readyState === "complete") connect();
else window.addEventListener("load", () => setTimeout(connect, 0), { once: true });
