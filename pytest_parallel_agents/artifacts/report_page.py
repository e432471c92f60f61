"""The HTML report's page: markup, style and script inline, the run's data put in by report.py."""

from __future__ import annotations

from typing import Final

PAGE: Final = r"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>__TITLE__</title>
<style>
:root { --fg:#1d2330; --muted:#5f6b7a; --line:#d9dee5; --bg:#fff; --band:#f4f6f9; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       background: var(--bg); margin: 0; padding: 16px 24px 48px; }
h1 { font-size: 20px; margin: 0 0 4px; }
h2 { font-size: 16px; margin: 28px 0 8px; }
.muted { color: var(--muted); }
#headline { font-size: 16px; margin: 12px 0; padding: 10px 14px; background: #fff7e0;
            border-left: 4px solid #e0a800; }
table { border-collapse: collapse; margin: 4px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
th { font-weight: 600; background: var(--band); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 120px; }
.card b { display: block; font-size: 18px; }
#timeline-box { position: relative; border: 1px solid var(--line); border-radius: 6px;
                overflow: hidden; }
#timeline { display: block; width: 100%; cursor: crosshair; }
#tip { position: absolute; pointer-events: none; background: rgba(29,35,48,.94); color: #fff;
       padding: 6px 9px; border-radius: 4px; font-size: 12px; max-width: 560px; display: none;
       white-space: pre-wrap; word-break: break-all; z-index: 2; }
.legend span { display: inline-block; margin-right: 14px; font-size: 12px; }
.legend i { display: inline-block; width: 12px; height: 12px; border-radius: 2px;
            vertical-align: -2px; margin-right: 4px; }
code { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; }
.reason { font: 12px ui-monospace, SFMono-Regular, Menlo, monospace; color: #8a1f1f; }
#filter { margin: 6px 0; padding: 4px 8px; width: 360px; }
button { font: inherit; padding: 2px 10px; }
</style>
</head>
<body>
<h1>__TITLE__</h1>
<div id="summary" class="muted"></div>
<div id="headline"></div>

<h2>Timeline</h2>
<div class="legend" id="legend"></div>
<p class="muted">A lane per agent, grouped by suite and host; every test a bar from its start to
its end. Grey: an agent starting; pale: alive, idle. Scroll to zoom, drag to pan,
double-click (or <button id="reset">reset</button>) to see the whole run.</p>
<div id="timeline-box"><canvas id="timeline"></canvas><div id="tip"></div></div>

<h2>What bounded the wall time</h2>
<table id="bounds"><thead><tr><th>what</th><th class="num">seconds</th><th>detail</th></tr>
</thead><tbody></tbody></table>

<h2>The run</h2>
<div class="cards" id="cards"></div>

<h2>The plan and what happened</h2>
<table id="suites"><thead><tr><th>suite</th><th class="num">tests</th><th class="num">agents</th>
<th class="num">added</th><th class="num">wave</th><th>exclusive</th>
<th class="num">predicted s</th><th class="num">actual s</th><th class="num">utilisation</th>
</tr></thead><tbody></tbody></table>

<h2>Agents</h2>
<table id="agents"><thead><tr><th>agent</th><th>suite</th><th>host</th><th class="num">tests</th>
<th class="num">busy s</th><th class="num">start-up s</th><th class="num">alive s</th>
<th class="num">utilisation</th><th>ended</th></tr></thead><tbody></tbody></table>

<h2>Failures</h2>
<div id="failures"></div>

<h2>Slowest tests</h2>
<table id="slowest"><thead><tr><th class="num">seconds</th><th>test</th><th>agent</th>
<th>outcome</th></tr></thead><tbody></tbody></table>

<h2>All tests</h2>
<details id="all"><summary id="all-summary"></summary>
<input id="filter" placeholder="filter by node id or agent"> <span id="shown" class="muted"></span>
<button id="more" hidden>show them all</button>
<table id="all-tests"><thead><tr><th>test</th><th>agent</th><th>outcome</th>
<th class="num">start s</th><th class="num">seconds</th></tr></thead><tbody></tbody></table>
</details>

<script id="data" type="application/json">__DATA__</script>
<script>
"use strict";
const D = JSON.parse(document.getElementById("data").textContent);
const COLORS = {passed: "#3a9d5d", failed: "#d64545", error: "#b4237a", skipped: "#c9a227",
  xfailed: "#8a8fa0", xpassed: "#e08a2e", rerun: "#7f5ab6"};
const MARKS = {crash: ["\u2715", "#c81e1e"], timeout: ["\u25c6", "#e07b00"],
  retry: ["\u21bb", "#7f5ab6"], steal: ["\u25b2", "#2563eb"],
  "given back": ["\u25bc", "#0e9488"], replacement: ["\u25cf", "#15803d"]};
const color = o => COLORS[o] || "#6b7280";
const esc = s => String(s == null ? "" : s).replace(/[&<>"]/g,
  c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);
const secs = s => s == null ? "\u2013" : (Math.abs(s) < 1 ? (s * 1000).toFixed(1) + " ms"
  : s.toFixed(2) + " s");
const num = s => s == null ? "\u2013" : Number(s).toFixed(2);
const pct = s => s == null ? "\u2013" : Math.round(s * 100) + "%";
const T = D.ticks;
const tests = D.tests;  // [lane, start, stop, outcome, file, name]
const nodeid = t => (D.files[t[4]] ? D.files[t[4]] + "::" : "") + t[5];

function fill(id, rows) {
  document.querySelector("#" + id + " tbody").innerHTML = rows.join("");
}

// --- summary, headline, bounds, cards ------------------------------------------------------
const totals = D.totals || {};
const counts = {};
for (const t of tests) { const o = D.outcomes[t[3]]; counts[o] = (counts[o] || 0) + 1; }
const run = D.run || {};
document.getElementById("summary").textContent =
  [tests.length + " tests", ...Object.entries(counts).map(([o, n]) => n + " " + o),
   D.lanes.length + " lanes", "wall " + secs(D.wall), "mode " + (run.mode || "?"),
   run.budget ? "budget " + run.budget : "",
   run.started ? new Date(run.started * 1000).toLocaleString() : ""]
  .filter(Boolean).join(" \u00b7 ");
document.getElementById("headline").textContent = "What bounded the wall time: " + D.headline;
fill("bounds", D.bounds.map(b =>
  `<tr><td>${esc(b[0])}</td><td class="num">${num(b[1])}</td><td>${esc(b[2])}</td></tr>`));
const cards = [
  ["wall", secs(totals.wall_seconds != null ? totals.wall_seconds : D.wall)],
  ["collection", secs(totals.collect_seconds)],
  ["distribution", secs(totals.distribution_seconds)],
  ["execution", secs(totals.execution_seconds)],
  ["aggregation", secs(totals.aggregation_seconds)],
  ["controller CPU", secs(totals.controller_cpu_seconds)],
  ["restarts", totals.restarts], ["retries", totals.retries],
  ["tests given back", totals.tests_returned],
  ["lost", D.lost.length], ["duplicates", D.duplicates.length],
];
document.getElementById("cards").innerHTML = cards.filter(c => c[1] != null).map(c =>
  `<div class="card"><span class="muted">${esc(c[0])}</span><b>${esc(c[1])}</b></div>`).join("")
  + Object.entries(D.degraded).map(([s, why]) =>
  `<div class="card"><span class="muted">degraded</span><b>${esc(s)}</b>${esc(why)}</div>`)
  .join("");

// --- suites and agents ---------------------------------------------------------------------
const busyBySuite = {}, aliveBySuite = {};
for (const l of D.lanes) {
  const alive = l.finished != null && l.ready != null ? l.finished - l.ready : null;
  busyBySuite[l.suite] = (busyBySuite[l.suite] || 0) + l.busy;
  if (alive != null) aliveBySuite[l.suite] = (aliveBySuite[l.suite] || 0) + alive;
}
fill("suites", D.suites.map(s => {
  const util = aliveBySuite[s.name] ? Math.min(1, busyBySuite[s.name] / aliveBySuite[s.name])
    : null;
  return `<tr><td>${esc(s.name)}</td><td class="num">${esc(s.tests)}</td>` +
    `<td class="num">${esc(s.agents)}</td><td class="num">${esc(s.agents_added || 0)}</td>` +
    `<td class="num">${esc(s.wave)}</td><td>${s.exclusive ? "yes" : ""}</td>` +
    `<td class="num">${num(s.predicted_seconds)}</td><td class="num">${num(s.wall_seconds)}</td>` +
    `<td class="num">${pct(util)}</td></tr>`;
}));
fill("agents", D.lanes.map(l => {
  const start = l.ready != null && l.started != null ? l.ready - l.started : null;
  const alive = l.finished != null && l.ready != null ? l.finished - l.ready : null;
  const util = l.utilization != null ? l.utilization
    : (alive ? Math.min(1, l.busy / alive) : null);
  const ended = l.crashed ? "crashed" : (l.finished != null ? "finished" : "");
  return `<tr><td>${esc(l.job ? l.job + " " : "")}${esc(l.agent)}</td><td>${esc(l.suite)}</td>` +
    `<td>${esc(l.host)}</td><td class="num">${l.tests}</td><td class="num">${num(l.busy)}</td>` +
    `<td class="num">${num(start)}</td><td class="num">${num(alive)}</td>` +
    `<td class="num">${pct(util)}</td><td>${ended}${l.replaces ? ", replaces " +
    esc(l.replaces) : ""}</td></tr>`;
}));

// --- failures, slowest, all tests ----------------------------------------------------------
document.getElementById("failures").innerHTML = D.failures.length ? "<table><thead><tr>" +
  "<th>test</th><th>outcome</th><th>agent</th><th>reason</th></tr></thead><tbody>" +
  D.failures.map(f => `<tr><td><code>${esc(f[0])}</code></td><td>${esc(f[1])}</td>` +
  `<td>${esc(f[2])}</td><td class="reason">${esc(f[3])}</td></tr>`).join("") +
  "</tbody></table>" : '<p class="muted">None.</p>';
fill("slowest", D.slowest.map(s => `<tr><td class="num">${num(s[0])}</td>` +
  `<td><code>${esc(s[1])}</code></td><td>${esc(s[2])}</td><td>${esc(s[3])}</td></tr>`));
document.getElementById("all-summary").textContent = "every test of the run (" + tests.length +
  "), in the order each agent ran them";
const allBox = document.getElementById("all"), more = document.getElementById("more");
const ROWS = 5000;  // a table of tens of thousands of rows takes a browser many seconds
let limit = ROWS;
function showAll() {
  const words = document.getElementById("filter").value.trim().toLowerCase();
  const rows = [];
  let matching = 0;
  for (const t of tests) {
    const id = nodeid(t), agent = D.lanes[t[0]].agent;
    if (words && !(id.toLowerCase().includes(words) || agent.toLowerCase().includes(words)))
      continue;
    if (++matching > limit) continue;
    rows.push(`<tr data-nodeid="${esc(id)}"><td><code>${esc(id)}</code></td>` +
      `<td>${esc(agent)}</td><td>${esc(D.outcomes[t[3]])}</td>` +
      `<td class="num">${(t[1] / T).toFixed(3)}</td>` +
      `<td class="num">${((t[2] - t[1]) / T).toFixed(3)}</td></tr>`);
  }
  fill("all-tests", rows);
  document.getElementById("shown").textContent = rows.length < matching
    ? `the first ${rows.length} of ${matching}: narrow the filter, or` : `${matching} shown`;
  more.hidden = rows.length >= matching;
}
allBox.addEventListener("toggle", () => { if (allBox.open) showAll(); });
document.getElementById("filter").addEventListener("input", () => { limit = ROWS; showAll(); });
more.addEventListener("click", () => { limit = Infinity; showAll(); });

// --- the timeline --------------------------------------------------------------------------
document.getElementById("legend").innerHTML =
  D.outcomes.map(o => `<span><i style="background:${color(o)}"></i>${esc(o)}</span>`).join("") +
  Object.entries(MARKS).map(([k, [s, c]]) =>
    `<span><b style="color:${c}">${s}</b> ${esc(k)}</span>`).join("");
const canvas = document.getElementById("timeline"), tip = document.getElementById("tip");
const ctx = canvas.getContext("2d");
const LABEL = 170, AXIS = 22, ROW = 16, HEAD = 20;
const rows = [];  // {kind: "head", text} or {kind: "lane", lane}
let group = null;
D.lanes.forEach((l, i) => {
  const key = [l.job, l.suite, l.host].join("\u0000");
  if (key !== group) {
    group = key;
    rows.push({kind: "head", text: [l.job, "suite " + l.suite, l.host].filter(Boolean)
      .join(" \u00b7 ")});
  }
  rows.push({kind: "lane", lane: i});
});
const byLane = D.lanes.map(() => []);
tests.forEach((t, i) => byLane[t[0]].push(i));
const marksByLane = D.lanes.map(() => []);
const laneOf = {};
D.lanes.forEach((l, i) => { laneOf[l.agent] = i; });
for (const m of D.marks) if (m[2] in laneOf) marksByLane[laneOf[m[2]]].push(m);
const rowTop = [];
let height = AXIS;
for (const r of rows) { rowTop.push(height); height += r.kind === "head" ? HEAD : ROW; }
const full = Math.max(D.wall, 1e-3);
let t0 = 0, t1 = full, width = 0;

function resize() {
  const ratio = window.devicePixelRatio || 1;
  width = canvas.parentElement.clientWidth;
  canvas.style.height = (height + 4) + "px";
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round((height + 4) * ratio);
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  draw();
}
const x = t => LABEL + (t - t0) / (t1 - t0) * (width - LABEL);
const timeAt = px => t0 + (px - LABEL) / (width - LABEL) * (t1 - t0);

function step(span) {
  const raw = span / 8, p = Math.pow(10, Math.floor(Math.log10(raw)));
  return [1, 2, 5, 10].map(k => k * p).find(s => s >= raw);
}

function draw() {
  let shown = 0;
  ctx.clearRect(0, 0, width, height + 4);
  ctx.font = "11px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  const s = step(t1 - t0);
  ctx.fillStyle = "#5f6b7a";
  ctx.strokeStyle = "#e6e9ee";
  for (let t = Math.ceil(t0 / s) * s; t <= t1; t += s) {
    const px = x(t);
    ctx.beginPath(); ctx.moveTo(px, AXIS - 4); ctx.lineTo(px, height); ctx.stroke();
    ctx.fillText(s < 1 ? t.toFixed(s < 0.1 ? 2 : 1) + " s" : Math.round(t) + " s", px + 3, 9);
  }
  rows.forEach((r, n) => {
    const top = rowTop[n];
    if (r.kind === "head") {
      ctx.fillStyle = "#f4f6f9"; ctx.fillRect(0, top, width, HEAD);
      ctx.fillStyle = "#1d2330"; ctx.font = "600 11px system-ui, sans-serif";
      ctx.fillText(r.text, 6, top + HEAD / 2);
      ctx.font = "11px system-ui, sans-serif";
      return;
    }
    const l = D.lanes[r.lane];
    ctx.fillStyle = "#1d2330";
    ctx.fillText((l.crashed ? "\u2715 " : "") + l.agent, 10, top + ROW / 2);
    ctx.save();
    ctx.beginPath(); ctx.rect(LABEL, top, width - LABEL, ROW); ctx.clip();
    const born = l.started != null ? l.started : 0;
    const gone = l.finished != null ? l.finished : D.wall;
    ctx.fillStyle = "#eef2f7"; ctx.fillRect(x(born), top + 2, x(gone) - x(born), ROW - 4);
    if (l.ready != null) {
      ctx.fillStyle = "#c5ccd6"; ctx.fillRect(x(born), top + 2, x(l.ready) - x(born), ROW - 4);
    }
    let lastPx = -1, lastColor = "";
    for (const i of byLane[r.lane]) {
      const t = tests[i], a = x(t[1] / T), b = x(t[2] / T);
      if (b < LABEL || a > width) continue;
      shown++;
      const c = color(D.outcomes[t[3]]), px = Math.floor(a);
      if (px === lastPx && c === lastColor && b - a < 1) continue;  // same pixel: drawn
      lastPx = px; lastColor = c;
      ctx.fillStyle = c;
      ctx.fillRect(a, top + 3, Math.max(1, b - a - (b - a > 3 ? 1 : 0)), ROW - 6);
    }
    for (const m of marksByLane[r.lane]) {
      const [sym, c] = MARKS[m[1]] || ["?", "#000"];
      ctx.fillStyle = c; ctx.fillText(sym, x(m[0]) - 4, top + ROW / 2);
    }
    ctx.restore();
  });
  canvas.dataset.tests = String(shown);  // tests within the view: what a check can read
}

function rowAt(y) {
  for (let n = rows.length - 1; n >= 0; n--) if (y >= rowTop[n]) return rows[n];
  return null;
}

function describe(px, py) {
  const r = rowAt(py);
  if (!r || r.kind !== "lane" || px < LABEL) return null;
  const l = D.lanes[r.lane], t = timeAt(px), slack = (t1 - t0) / (width - LABEL) * 3;
  for (const m of marksByLane[r.lane])
    if (Math.abs(m[0] - t) <= slack) return `${m[1]} at ${secs(m[0])}\n${m[3]}`;
  const list = byLane[r.lane];
  let lo = 0, hi = list.length - 1, found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (tests[list[mid]][1] / T <= t + slack) { found = mid; lo = mid + 1; } else hi = mid - 1;
  }
  for (let k = found; k >= 0 && k > found - 50; k--) {
    const s = tests[list[k]];
    if (s[2] / T >= t - slack && s[1] / T <= t + slack)
      return `${nodeid(s)}\n${D.outcomes[s[3]]} \u00b7 ${secs((s[2] - s[1]) / T)} \u00b7 ` +
        `${l.agent} \u00b7 from ${secs(s[1] / T)}`;
  }
  if (l.started != null && l.ready != null && t >= l.started && t <= l.ready)
    return `${l.agent} starting (${secs(l.ready - l.started)})`;
  return `${l.agent} (${l.suite}, ${l.host}): idle at ${secs(t)}`;
}

let drag = null;
canvas.addEventListener("mousemove", e => {
  const box = canvas.getBoundingClientRect(), px = e.clientX - box.left, py = e.clientY - box.top;
  if (drag) {
    const dt = (drag.x - px) / (width - LABEL) * (drag.t1 - drag.t0);
    t0 = drag.t0 + dt; t1 = drag.t1 + dt; draw(); return;
  }
  const text = describe(px, py);
  if (!text) { tip.style.display = "none"; return; }
  tip.textContent = text; tip.style.display = "block";
  tip.style.left = Math.min(px + 14, width - 380) + "px"; tip.style.top = (py + 14) + "px";
});
canvas.addEventListener("mouseleave", () => { tip.style.display = "none"; drag = null; });
canvas.addEventListener("mousedown", e => {
  drag = {x: e.clientX - canvas.getBoundingClientRect().left, t0, t1};
});
window.addEventListener("mouseup", () => { drag = null; });
canvas.addEventListener("wheel", e => {
  e.preventDefault();
  const px = e.clientX - canvas.getBoundingClientRect().left, at = timeAt(px);
  const k = e.deltaY > 0 ? 1.25 : 0.8;
  const span = Math.max(1e-4, Math.min(full * 1.05, (t1 - t0) * k));
  t0 = at - (at - t0) / (t1 - t0) * span; t1 = t0 + span; draw();
}, {passive: false});
function reset() { t0 = 0; t1 = full; draw(); }
canvas.addEventListener("dblclick", reset);
document.getElementById("reset").addEventListener("click", reset);
window.addEventListener("resize", resize);
resize();
if (location.hash === "#all") { allBox.open = true; showAll(); }
document.body.dataset.rendered = "yes";
</script>
</body>
</html>
"""
