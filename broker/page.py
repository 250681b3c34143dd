"""The dashboard page: one self-contained HTML document (inline CSS and JS, nothing fetched from elsewhere)."""

from __future__ import annotations

import base64
import hashlib

STYLE = """
:root { --bg: #f6f7f9; --fg: #1d2330; --dim: #6b7385; --line: #dde1e8; --run: #2f9e5b;
        --queue: #e0a526; --bad: #c8414b; --card: #fff; }
* { box-sizing: border-box; }
body { margin: 0; padding: 1rem 1.5rem; background: var(--bg); color: var(--fg);
       font: 14px/1.4 system-ui, sans-serif; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
h1 { font-size: 1.3rem; margin: 0; } h2 { font-size: 1rem; margin: 1.4rem 0 .4rem; }
h2 small, #summary { color: var(--dim); font-weight: normal; }
#live { margin-left: auto; } #live.ok::before { content: "\\25CF  "; color: var(--run); }
#live.down { color: var(--bad); font-weight: bold; }
.cards { display: flex; gap: .6rem; flex-wrap: wrap; margin-top: .8rem; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 6px;
        padding: .4rem .8rem; min-width: 7rem; }
.card b { display: block; font-size: 1.4rem; }
.card span { color: var(--dim); font-size: .8rem; }
table { border-collapse: collapse; width: 100%; background: var(--card); border: 1px solid var(--line); }
th, td { text-align: left; padding: .25rem .6rem; border-bottom: 1px solid var(--line);
         white-space: nowrap; }
th { font-size: .75rem; color: var(--dim); text-transform: uppercase; letter-spacing: .04em; }
td.cmd { font-family: ui-monospace, monospace; white-space: pre; overflow: hidden;
         text-overflow: ellipsis; max-width: 40rem; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.empty td { color: var(--dim); font-style: italic; }
tr[data-state="late"] td, .bad { color: var(--bad); }
tr[data-state="draining"] td { color: var(--dim); }
.bar { display: flex; width: 10rem; height: .8rem; background: #eceff3; border-radius: 3px;
       overflow: hidden; position: relative; }
.bar i { display: block; height: 100%; } .bar .r { background: var(--run); }
.bar .q { background: var(--queue); }
.bar .slots { position: absolute; top: 0; bottom: 0; width: 1px; background: var(--fg); }
.ok-status { color: var(--run); }
footer { margin-top: 1.5rem; color: var(--dim); font-size: .8rem; }
"""

SCRIPT = """
"use strict";
const $ = (id) => document.getElementById(id);
let busy = false;
function age(s) {
  if (s < 10) return s.toFixed(1) + "s";
  if (s < 60) return Math.round(s) + "s";
  const pad = (n) => String(Math.floor(n)).padStart(2, "0");
  if (s < 3600) return Math.floor(s / 60) + "m" + pad(s % 60) + "s";
  return Math.floor(s / 3600) + "h" + pad((s % 3600) / 60) + "m";
}
function row(cls, cells) {
  const tr = document.createElement("tr");
  tr.className = cls;
  for (const [text, tdClass] of cells) {
    const td = document.createElement("td");
    if (text instanceof Node) td.appendChild(text); else td.textContent = String(text);
    if (tdClass) td.className = tdClass;
    tr.appendChild(td);
  }
  return tr;
}
function fill(id, items, make, empty) {
  const rows = items.map(make);
  if (!rows.length) rows.push(row("empty", [[empty]]));
  if (!items.length) rows[0].firstChild.colSpan = $(id).tHead.rows[0].cells.length;
  $(id).tBodies[0].replaceChildren(...rows);
}
function bar(w) {
  const scale = Math.max(2 * w.slots, w.queue, 1), d = document.createElement("div");
  d.className = "bar";
  d.title = w.running + " running, " + Math.max(0, w.queue - w.running) + " queued, " + w.slots + " slots";
  for (const [cls, n] of [["r", w.running], ["q", Math.max(0, w.queue - w.running)]]) {
    const i = document.createElement("i");
    i.className = cls; i.style.width = (100 * n / scale) + "%"; d.appendChild(i);
  }
  const mark = document.createElement("i");
  mark.className = "slots"; mark.style.left = (100 * w.slots / scale) + "%"; d.appendChild(mark);
  return d;
}
function worker(w) {
  const tr = row("worker", [[w.name], [w.host], [w.state], [bar(w)], [w.running, "num"],
    [Math.max(0, w.queue - w.running), "num"], [w.slots, "num"], [age(w.heard), "num"], [w.version]]);
  tr.dataset.state = w.state;
  return tr;
}
const action = (a) => row("action", [[a.job, "num"], [a.state], [a.worker_name || a.worker.slice(0, 8)],
  [a.submitter || a.client.slice(0, 8)], [age(a.age), "num"], [a.command, "cmd"]]);
function result(r) {
  const ok = r.status === "exited" && r.code === 0;
  const what = r.status === "exited" ? "exit " + r.code : r.status;
  const tr = row("result", [[r.job, "num"], [what, ok ? "ok-status" : "bad"],
    [r.worker_name || r.worker.slice(0, 8)], [age(r.elapsed), "num"], [age(r.ago) + " ago", "num"],
    [r.command, "cmd"]]);
  if (r.error) tr.cells[1].title = r.error;
  return tr;
}
function card(value, label) {
  const d = document.createElement("div"), b = document.createElement("b"), s = document.createElement("span");
  d.className = "card"; b.textContent = String(value); s.textContent = label;
  d.append(b, s);
  return d;
}
function render(s) {
  const sum = (f) => s.workers.reduce((n, w) => n + f(w), 0), c = s.counters;
  const running = sum((w) => w.running), queued = sum((w) => Math.max(0, w.queue - w.running));
  const of = s.workers_total > s.workers.length ? " (the " + s.workers.length + " listed)" : "";
  $("summary").textContent = "broker " + s.version + ", up " + age(s.uptime);
  $("cards").replaceChildren(card(s.workers_total, "workers"), card(sum((w) => w.slots), "slots" + of),
    card(running, "running" + of), card(queued, "queued on workers" + of), card(s.flight_total, "in flight"),
    card(s.submitters_total, "submitters"), card(c.results || 0, "results"),
    card(c.jobs || 0, "jobs forwarded"));
  fill("workers", s.workers, worker, "no worker connected");
  fill("flight", s.flight, action, "nothing in flight");
  $("flight-note").textContent = s.flight_total > s.flight.length ?
    "(oldest " + s.flight.length + " of " + s.flight_total + ")" : "";
  fill("recent", s.recent, result, "no result yet");
}
async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const r = await fetch("api/status", {cache: "no-store"});
    if (!r.ok) throw new Error("HTTP " + r.status);
    render(await r.json());
    $("live").textContent = "live"; $("live").className = "ok";
  } catch (e) {
    $("live").textContent = "broker not answering (" + e.message + ")"; $("live").className = "down";
  } finally {
    busy = false;
  }
}
refresh();
setInterval(refresh, 1000);
"""

BODY = """<header><h1>rake cluster</h1><span id="summary"></span><span id="live">connecting…</span></header>
<section class="cards" id="cards"></section>
<h2>Workers</h2>
<table id="workers"><thead><tr><th>worker</th><th>host</th><th>state</th><th>load</th><th>running</th>
<th>queued</th><th>slots</th><th>heard</th><th>version</th></tr></thead><tbody></tbody></table>
<h2>Actions in flight <small id="flight-note"></small></h2>
<table id="flight"><thead><tr><th>job</th><th>state</th><th>worker</th><th>submitter</th><th>for</th>
<th>command</th></tr></thead><tbody></tbody></table>
<h2>Recent results</h2>
<table id="recent"><thead><tr><th>job</th><th>status</th><th>worker</th><th>took</th><th>ended</th>
<th>command</th></tr></thead><tbody></tbody></table>
<footer>Updated every second from <a href="api/status">/api/status</a> (JSON);
Prometheus metrics at <a href="metrics">/metrics</a>. Job states are estimated from each
worker's running count.</footer>"""

PAGE = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>rake cluster</title><style>{STYLE}</style></head>\n<body>\n{BODY}\n'
        f'<script>{SCRIPT}</script>\n</body></html>\n').encode()


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only this page's own script and style may run, and it may talk only to this server.
CSP = (f"default-src 'none'; connect-src 'self'; img-src 'self'; "
       f"style-src {_hash(STYLE)}; script-src {_hash(SCRIPT)}; base-uri 'none'; form-action 'none'")
