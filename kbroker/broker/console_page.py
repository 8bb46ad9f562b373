"""The console's one page: plain HTML, CSS and JavaScript, no build step, no external assets.

It polls /api/overview every 2 s, draws the tables and a throughput chart (rates from the change
in per-topic totals between polls, over the broker's clock), and fetches /api/records for the
message browser. `/?topic=T&group=G` opens with that topic's partitions and latest records and
that group's offsets shown. All broker data goes into the page through textContent, never as HTML.
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>kbroker console</title>
<style>
 body { font: 14px system-ui, sans-serif; margin: 0 24px 24px; color: #1b1f24; }
 h1 { font-size: 20px; margin: 16px 0 4px; } h2 { font-size: 16px; margin: 24px 0 8px; }
 .sub { color: #57606a; }
 table { border-collapse: collapse; min-width: 480px; }
 th, td { text-align: left; padding: 4px 10px; border-bottom: 1px solid #d0d7de; vertical-align: top; }
 th { background: #f6f8fa; } td.n { text-align: right; font-variant-numeric: tabular-nums; }
 tr.pick { cursor: pointer; } tr.pick:hover { background: #f0f6ff; }
 canvas { border: 1px solid #d0d7de; }
 pre { margin: 0; white-space: pre-wrap; max-width: 720px; }
 .legend span { display: inline-block; margin-right: 16px; } .in { color: #0969da; } .out { color: #1a7f37; }
</style>
</head>
<body>
<h1>kbroker console</h1>
<div class="sub" id="identity">loading…</div>

<h2>Brokers</h2>
<table id="brokers"><thead><tr><th>id</th><th>host</th><th>port</th><th>rack</th><th>controller</th></tr></thead>
<tbody></tbody></table>

<h2>Throughput</h2>
<div class="legend"><span class="in">■ messages in/s</span><span class="out">■ bytes out/s ÷ 100</span>
<span id="rates"></span></div>
<canvas id="chart" width="720" height="160"></canvas>

<h2>Topics</h2>
<table id="topics"><thead><tr><th>topic</th><th>partitions</th><th>messages (high watermarks)</th>
<th>size</th><th>in msg/s</th></tr></thead><tbody></tbody></table>
<table id="partitions" style="margin-top:8px"><thead><tr><th>partition</th><th>leader</th><th>ISR</th>
<th>log start</th><th>high watermark</th><th>log end</th><th>size</th></tr></thead><tbody></tbody></table>

<h2>Consumer groups</h2>
<table id="groups"><thead><tr><th>group</th><th>state</th><th>members</th><th>lag</th></tr></thead>
<tbody></tbody></table>
<table id="group-detail" style="margin-top:8px"><thead><tr><th>topic</th><th>partition</th><th>committed</th>
<th>high watermark</th><th>lag</th><th>member</th></tr></thead><tbody></tbody></table>

<h2>Messages</h2>
<form id="browse">
 <select id="browse-topic"></select> partition <input id="browse-partition" type="number" value="0" min="0" style="width:5em">
 latest <input id="browse-limit" type="number" value="20" min="1" max="500" style="width:5em">
 <button type="submit">show</button> <span id="browse-status" class="sub"></span>
</form>
<table id="records" style="margin-top:8px"><thead><tr><th>offset</th><th>timestamp</th><th>key</th><th>value</th>
<th>headers</th></tr></thead><tbody></tbody></table>

<script>
"use strict";
const params = new URLSearchParams(location.search);
let last = null, lastAt = 0, data = null, chosenTopic = params.get("topic"), chosenGroup = params.get("group");
const history = [];

function cell(row, text, numeric) {
  const td = row.insertCell(); td.textContent = text === null || text === undefined ? "–" : String(text);
  if (numeric) td.className = "n"; return td;
}
function fill(id, rows, build) {
  const body = document.querySelector("#" + id + " tbody"); body.replaceChildren();
  for (const item of rows) build(body.insertRow(), item);
}
function size(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return (i ? bytes.toFixed(1) : bytes) + " " + units[i];
}
function shown(decoded) {
  if (decoded === null) return "null";
  if ("json" in decoded) return JSON.stringify(decoded.json);
  if ("text" in decoded) return decoded.text;
  return "0x" + decoded.hex;
}

async function refresh() {
  let overview;
  try { overview = await (await fetch("/api/overview")).json(); }
  catch (e) { document.getElementById("identity").textContent = "broker unreachable: " + e; return; }
  const first = data === null, now = overview.now_ms;
  data = overview;
  document.getElementById("identity").textContent =
    "broker " + overview.node_id + " · cluster " + overview.cluster_id;
  fill("brokers", overview.brokers, (r, b) => {
    cell(r, b.id); cell(r, b.host); cell(r, b.port, true); cell(r, b.rack); cell(r, b.controller ? "yes" : "");
  });
  const rates = {}; let totalIn = 0, totalOut = 0;
  for (const t of overview.topics) {
    const before = last && last.get(t.name);
    const seconds = (now - lastAt) / 1000;
    rates[t.name] = before && seconds > 0 ? Math.max(t.messages_in - before.messages_in, 0) / seconds : 0;
    if (before && seconds > 0) {
      totalIn += rates[t.name]; totalOut += Math.max(t.bytes_out - before.bytes_out, 0) / seconds;
    }
  }
  if (last) { history.push([totalIn, totalOut / 100]); if (history.length > 120) history.shift(); }
  document.getElementById("rates").textContent =
    "now: " + Math.round(totalIn) + " msg/s in, " + size(totalOut) + "/s out";
  last = new Map(overview.topics.map(t => [t.name, t])); lastAt = now;
  draw();
  fill("topics", overview.topics, (r, t) => {
    r.className = "pick"; r.onclick = () => { chosenTopic = t.name; topicDetail(); };
    cell(r, t.name); cell(r, t.partitions.length, true);
    cell(r, t.partitions.reduce((s, p) => s + p.high_watermark - p.log_start_offset, 0), true);
    cell(r, size(t.partitions.reduce((s, p) => s + p.size, 0)), true); cell(r, Math.round(rates[t.name]), true);
  });
  const select = document.getElementById("browse-topic"), keep = select.value;
  select.replaceChildren(...overview.topics.map(t => new Option(t.name, t.name)));
  if (keep) select.value = keep;
  else select.value = chosenTopic || (overview.topics.find(t => !t.name.startsWith("__")) || {}).name || "";
  fill("groups", overview.groups, (r, g) => {
    r.className = "pick"; r.onclick = () => { chosenGroup = g.group_id; groupDetail(); };
    cell(r, g.group_id); cell(r, g.state); cell(r, g.members.length, true);
    cell(r, g.offsets.reduce((s, o) => s + (o.lag || 0), 0), true);
  });
  topicDetail(); groupDetail();
  if (first && params.get("topic")) browse();
}

function topicDetail() {
  const topic = data && data.topics.find(t => t.name === chosenTopic);
  fill("partitions", topic ? topic.partitions : [], (r, p) => {
    cell(r, p.partition, true); cell(r, p.leader, true); cell(r, p.isr.join(", "));
    cell(r, p.log_start_offset, true); cell(r, p.high_watermark, true); cell(r, p.log_end_offset, true);
    cell(r, size(p.size), true);
  });
}

function groupDetail() {
  const group = data && data.groups.find(g => g.group_id === chosenGroup);
  const owner = new Map();
  if (group) for (const m of group.members)
    for (const [topic, partitions] of Object.entries(m.assignment))
      for (const p of partitions) owner.set(topic + "/" + p, m.client_id + " (" + m.host + ")");
  fill("group-detail", group ? group.offsets : [], (r, o) => {
    cell(r, o.topic); cell(r, o.partition, true); cell(r, o.committed, true); cell(r, o.high_watermark, true);
    cell(r, o.lag, true); cell(r, owner.get(o.topic + "/" + o.partition));
  });
}

function draw() {
  const canvas = document.getElementById("chart"), g = canvas.getContext("2d");
  g.clearRect(0, 0, canvas.width, canvas.height);
  const peak = Math.max(1, ...history.flat());
  [[0, "#0969da"], [1, "#1a7f37"]].forEach(([k, color]) => {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    history.forEach((point, i) => {
      const x = i * canvas.width / 119, y = canvas.height - 4 - point[k] / peak * (canvas.height - 8);
      i ? g.lineTo(x, y) : g.moveTo(x, y);
    });
    g.stroke();
  });
}

document.getElementById("browse").onsubmit = (event) => { event.preventDefault(); browse(); };

async function browse() {
  const topic = document.getElementById("browse-topic").value;
  const partition = document.getElementById("browse-partition").value;
  const limit = document.getElementById("browse-limit").value;
  const status = document.getElementById("browse-status");
  const answer = await fetch("/api/records?" + new URLSearchParams({topic, partition, limit}));
  const body = await answer.json();
  if (!answer.ok) { status.textContent = body.error; fill("records", [], () => {}); return; }
  status.textContent = body.records.length + " records below high watermark " + body.high_watermark;
  fill("records", body.records, (r, m) => {
    cell(r, m.offset, true);
    if (m.error) { cell(r, m.error); return; }
    cell(r, new Date(m.timestamp).toISOString()); cell(r, shown(m.key));
    const value = r.insertCell(), pre = document.createElement("pre"); pre.textContent = shown(m.value);
    value.appendChild(pre); cell(r, m.headers.map(([k, v]) => k + "=" + shown(v)).join(", "));
  });
}

refresh(); setInterval(refresh, 2000);
</script>
</body>
</html>
"""
