// The Atlas dashboard: draws the page for the path from /api/v1 and keeps it live with
// server-sent events (/api/v1/runs/ID/events). No framework, nothing from a CDN.
"use strict";

const app = document.getElementById("app");
// Seconds from a sample's time to its drawing, newest first (read by the latency benchmark).
window.atlasLatency = [];
window.atlasPageLoads = (window.atlasPageLoads || 0) + 1;

const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
const api = async (path) => {
  const r = await fetch(path, { credentials: "same-origin" });
  if (r.status === 401) { location.href = "/login"; throw new Error("not logged in"); }
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || r.statusText);
  return r.json();
};
const secs = (s) => s == null ? "" : s < 90 ? `${s.toFixed(1)} s` : s < 5400 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`;
const when = (t) => t ? new Date(t * 1000).toLocaleString() : "";
const badge = (s) => `<span class="status ${esc(s)}">${esc(s)}</span>`;
const mib = (b) => b / 1048576;

// Why a user sees no runs: who they are, their tenants, and how a run comes to be theirs.
function noRuns(me) {
  if (!me) return `<p class="muted">No runs yet: <code>atlas run WORKFLOW --on TARGET</code>.</p>`;
  const tenants = me.tenants.length
    ? `a member of ${me.tenants.map((t) => `<b>${esc(t.name)}</b> (${esc(t.role)})`).join(", ")}`
    : "in no tenant";
  return `<div class="muted" id="no-runs"><p>No runs you can see yet. You are signed in as <b>${esc(me.user)}</b>, ${tenants}.</p>` +
    `<p>${esc(me.why)}</p><p>Start one as yourself: <code>ATLAS_USER=${esc(me.user)} atlas run WORKFLOW --on TARGET</code>.</p></div>`;
}

function runsTable(runs, me) {
  if (!runs.length) return noRuns(me);
  return `<table><thead><tr><th>Run</th><th>Workflow</th><th>Target</th><th>Status</th><th>Submitted</th><th>Wall</th><th>Cause</th></tr></thead><tbody>` +
    runs.map((r) => `<tr data-run="${esc(r.id)}"><td><a href="/runs/${esc(r.id)}">${esc(r.id)}</a></td><td>${esc(r.workflow)}</td><td>${esc(r.target)}</td>` +
      `<td>${badge(r.status)}</td><td>${when(r.submittedAt)}</td><td>${secs(r.wallSeconds)}</td><td class="cause">${esc(r.cause)}</td></tr>`).join("") + `</tbody></table>`;
}

async function home() {
  document.title = "Atlas · runs";
  const draw = async () => {
    const [runs, experiments, me] = await Promise.all([api("/api/v1/runs"), api("/api/v1/experiments"), api("/api/v1/me")]);
    app.innerHTML = `<h1>Runs</h1><div id="runs">${runsTable(runs, me)}</div><h2>Experiments</h2>` +
      (experiments.length ? `<table><thead><tr><th>Experiment</th><th>Workflow</th><th>Runs</th><th>Succeeded</th><th>Created</th></tr></thead><tbody>` +
        experiments.map((e) => `<tr><td><a href="/experiments/${esc(e.id)}">${esc(e.id)}</a></td><td>${esc(e.workflow)}</td><td>${e.runs}</td><td>${e.succeeded}</td><td>${when(e.createdAt)}</td></tr>`).join("") +
        `</tbody></table>` : `<p class="muted">No experiments yet.</p>`);
  };
  await draw();
  setInterval(() => draw().catch(() => {}), 2000);
}

// Three significant digits, everywhere a value is shown (`0.931`, `12.3`, `1520`).
const fmt = (v) => {
  if (v == null || !isFinite(v)) return "";
  if (v === 0) return "0";
  const digits = Math.max(0, Math.min(6, 2 - Math.floor(Math.log10(Math.abs(v)))));
  return v.toFixed(digits);
};

// A line chart kept as its points; redrawn as SVG when points arrive, with its axes: the value
// (0, half the highest, the highest, in the unit its title names) on the left, the time since the first point below.
class Chart {
  constructor(parent, title, unit) {
    this.points = []; this.unit = unit;
    this.el = document.createElement("div");
    this.el.className = "chart";
    this.el.innerHTML = `<h3>${esc(title)} <span class="now"></span></h3><svg viewBox="0 0 440 170"></svg>`;
    this.el.dataset.chart = title;
    parent.appendChild(this.el);
  }
  add(points) { this.points.push(...points); this.draw(); }
  draw() {
    const p = this.points, svg = this.el.querySelector("svg");
    this.el.dataset.points = p.length;
    if (!p.length) return;
    const [left, right, top, bottom] = [52, 432, 8, 140];
    const t0 = p[0][0], t1 = Math.max(p[p.length - 1][0], t0 + 1);
    const top_value = Math.max(...p.map((q) => q[1]), 1e-9) * 1.1;
    const x = (t) => left + (t - t0) / (t1 - t0) * (right - left), y = (v) => bottom - v / top_value * (bottom - top);
    const xy = p.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    const [lx, ly] = xy.split(" ").pop().split(",");
    const most = Math.max(...p.map((q) => q[1]));
    const ticks = [0, most / 2, most].filter((v, i) => i === 0 || v > 0).map((v) =>
      `<line class="grid" x1="${left}" y1="${y(v).toFixed(1)}" x2="${right}" y2="${y(v).toFixed(1)}"/><text class="tick" x="${left - 4}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${fmt(v)}</text>`).join("");
    const axes = `<line class="axis" x1="${left}" y1="${bottom}" x2="${right}" y2="${bottom}"/><line class="axis" x1="${left}" y1="${top}" x2="${left}" y2="${bottom}"/>` +
      `<text class="tick" x="${left}" y="${bottom + 16}">0 s</text><text class="tick" x="${right}" y="${bottom + 16}" text-anchor="end">${secs(t1 - t0)}</text>` +
      `<text class="tick" x="${(left + right) / 2}" y="${bottom + 28}" text-anchor="middle">time since the first point</text>`;
    // The last value as a dot too: a metric printed once has no line.
    svg.innerHTML = `${ticks}${axes}<polyline points="${xy}"/><circle cx="${lx}" cy="${ly}" r="3" fill="#1f6feb"/>`;
    const last = p[p.length - 1][1];
    this.el.querySelector(".now").textContent = `now ${fmt(last)} ${this.unit} · max ${fmt(most)} ${this.unit}`.replace(/ +·/, " ·").trim();
  }
}

// What a run is: its experiment, labels, where and when it ran, each phase's command.
function runFacts(r) {
  const labels = Object.entries(r.labels || {}).map(([k, v]) => `<span class="label">${esc(k)}=${esc(v)}</span>`).join(" ");
  const facts = [
    r.experimentId && `experiment <a id="experiment-link" href="/experiments/${esc(r.experimentId)}">${esc(r.experimentId)}</a>`,
    labels && `labels ${labels}`,
    r.host && `on ${esc(r.host)}`,
    r.submittedAt && `submitted ${when(r.submittedAt)}`,
    r.wallSeconds != null && `wall ${secs(r.wallSeconds)}`,
    (r.storage || []).length && `data: ${r.storage.map((p) => `${esc(p.path)} on ${esc(p.filesystem)} (${esc(p.mount)})`).join(", ")}`,
  ].filter(Boolean).join(" · ");
  const commands = (r.commands || []).map((c) => `<div class="command"><b>${esc(c.phase)}</b><pre>${esc(c.run.length > 2000 ? c.run.slice(0, 2000) + "…" : c.run)}</pre></div>`).join("");
  return `<p class="facts">${facts}</p>` + (commands ? `<details open id="commands"><summary>Commands</summary>${commands}</details>` : "");
}

function timeline(el, detail) {
  const phases = detail.phases.filter((p) => p.startedAt);
  if (!phases.length) { el.innerHTML = `<p class="muted">No phase has started yet.</p>`; return; }
  const now = Date.now() / 1000;
  const t0 = Math.min(...phases.map((p) => p.startedAt));
  const end = (p) => p.wallSeconds != null && p.status !== "running" ? p.startedAt + p.wallSeconds : now;
  const t1 = Math.max(...phases.map(end), t0 + 1);
  const colour = { succeeded: "#12805c", failed: "#c0362c", running: "#1f6feb" };
  const rows = phases.map((p, i) => {
    const x = (p.startedAt - t0) / (t1 - t0) * 700 + 150, w = Math.max((end(p) - p.startedAt) / (t1 - t0) * 700, 2);
    return `<text x="4" y="${i * 24 + 16}" font-size="12">${esc(p.name)}</text><rect x="${x}" y="${i * 24 + 4}" width="${w}" height="16" fill="${colour[p.status] || "#98a2b3"}"/>` +
      `<text x="${Math.min(x + w + 4, 860)}" y="${i * 24 + 16}" font-size="11" fill="#667085">${secs(end(p) - p.startedAt)}</text>`;
  }).join("");
  el.innerHTML = `<svg viewBox="0 0 920 ${phases.length * 24 + 6}">${rows}</svg>`;
}

async function runPage(id) {
  document.title = `Atlas · ${id}`;
  app.innerHTML = `<h1 id="title">Run ${esc(id)}</h1><div id="facts"></div><div id="cause"></div><h2>Phases</h2><div class="timeline" id="timeline"></div>` +
    `<h2>Resources and app metrics</h2><div class="grid" id="charts"></div><h2>Output <span class="muted" id="logphase"></span></h2><pre class="log" id="log"></pre>`;
  const charts = document.getElementById("charts");
  const cpu = new Chart(charts, "CPU (cores)", "cores"), mem = new Chart(charts, "Memory (RSS, MiB)", "MiB");
  let gpu = null; const metricCharts = {}; let last = null; let detail = null;
  const refreshLog = async () => {
    const log = await api(`/api/v1/runs/${id}/log?lines=60`).catch(() => null);
    if (!log) return;
    document.getElementById("logphase").textContent = `(${log.phase})`;
    document.getElementById("log").textContent = [log.stdout, log.stderr].filter(Boolean).join("\n") || "(no output yet)";
  };
  const facts = async () => { document.getElementById("facts").innerHTML = runFacts(await api(`/api/v1/runs/${id}`)); };
  facts().catch(() => {});
  const events = new EventSource(`/api/v1/runs/${id}/events`);
  events.addEventListener("run", (e) => {
    detail = JSON.parse(e.data);
    const r = detail; // the run's fields, with its phases
    document.getElementById("title").innerHTML = `Run ${esc(r.id)} · ${esc(r.workflow)} on ${esc(r.target)} ${badge(r.status)}`;
    const windows = (r.windows || []).map((w, i) => `<div class="window-box"><b>Window ${i + 1}:</b> frozen ${when(w.frozenAt)} in ${esc(w.phase)}, ` +
      (w.clean ? `checkpoint ${mib(w.checkpointBytes || 0).toFixed(1)} MiB in ${secs(w.quiesceSeconds)}` : `without checkpoint (${esc(w.reason)})`) +
      (w.lostSeconds == null ? "" : `, work lost ${secs(w.lostSeconds)}`) +
      `, ${w.frozenSeconds == null ? "still frozen" : `woken after ${secs(w.frozenSeconds)}`}</div>`).join("");
    document.getElementById("cause").innerHTML = (r.cause ? `<div class="cause-box"><b>Cause:</b> ${esc(r.cause)}</div>` : "") + windows;
    timeline(document.getElementById("timeline"), detail);
    refreshLog();
  });
  events.addEventListener("samples", (e) => {
    const points = JSON.parse(e.data);
    const cpuPts = [], memPts = [], gpuPts = [];
    for (const p of points) {
      if (last && last.phase === p.phase && p.time > last.time) cpuPts.push([p.time, Math.max(0, (p.cpuSeconds - last.cpuSeconds) / (p.time - last.time))]);
      memPts.push([p.time, mib(p.rssBytes)]);
      if (p.gpuPercent != null) gpuPts.push([p.time, p.gpuPercent]);
      last = p;
    }
    cpu.add(cpuPts); mem.add(memPts);
    if (gpuPts.length) { gpu = gpu || new Chart(charts, "GPU SM activity (%)", "%"); gpu.add(gpuPts); }
    if (points.length) window.atlasLatency.unshift(Date.now() / 1000 - points[points.length - 1].time);
  });
  events.addEventListener("metrics", (e) => {
    for (const m of JSON.parse(e.data)) {
      const c = metricCharts[m.name] || (metricCharts[m.name] = new Chart(charts, `metric: ${m.name}`, ""));
      c.add([[m.time, m.value]]);
    }
  });
  events.addEventListener("end", () => { events.close(); refreshLog(); facts().catch(() => {}); });
  setInterval(() => { if (detail && detail.status === "running") { timeline(document.getElementById("timeline"), detail); refreshLog(); } }, 3000);
}

async function experimentPage(id) {
  document.title = `Atlas · ${id}`;
  app.innerHTML = `<h1>Experiment ${esc(id)}</h1><div id="runs"></div><h2>Comparison</h2><div id="report"><p class="muted">Made when the runs have ended.</p></div>`;
  let shown = false;
  const draw = async () => {
    const e = await api(`/api/v1/experiments/${id}`);
    document.getElementById("runs").innerHTML = runsTable(e.runList);
    const done = e.runList.every((r) => !["submitted", "running"].includes(r.status));
    if (done && !shown) {
      shown = true;
      document.getElementById("report").innerHTML = `<iframe class="report" src="/api/v1/experiments/${esc(id)}/report" title="comparison"></iframe>`;
      // The whole report in the page: the frame grows to its content (same origin), no inner scrollbar.
      const frame = document.querySelector("iframe.report");
      frame.addEventListener("load", () => {
        const doc = frame.contentDocument;
        if (doc) frame.style.height = `${doc.documentElement.scrollHeight + 16}px`;
      });
    }
    return done;
  };
  if (!(await draw())) { const timer = setInterval(async () => { if (await draw().catch(() => false)) clearInterval(timer); }, 2000); }
}

async function targetsPage() {
  document.title = "Atlas · targets";
  const targets = await api("/api/v1/targets");
  app.innerHTML = `<h1>Targets</h1><table><thead><tr><th>Target</th><th>Kind</th><th>Settings</th><th>From</th></tr></thead><tbody>` +
    targets.map((t) => {
      const settings = Object.entries(t).filter(([k]) => !["name", "kind", "source"].includes(k)).map(([k, v]) => `${esc(k)}=${esc(typeof v === "string" ? v : JSON.stringify(v))}`).join(" ");
      return `<tr><td>${esc(t.name)}</td><td>${esc(t.kind)}</td><td>${settings}</td><td class="muted">${esc(t.source)}</td></tr>`;
    }).join("") + `</tbody></table>`;
}

// The nodes page: each node's use over time as a heat map (rows: nodes, columns: time
// buckets, colour: share of the node's cores in use), and its latest sample; redrawn every 2 s.
const share = (cores, capacity) => capacity ? Math.min(cores / capacity, 1) : null;
const heat = (f) => f == null ? "#e4e7ec" : `hsl(${(1 - f) * 210 + 0}, 75%, ${92 - f * 50}%)`;

function heatmap(data) {
  const rows = data.nodes.map((n) => `${n.target}/${n.node}`);
  const seen = new Set(rows);
  for (const b of data.buckets) { const k = `${b.target}/${b.node}`; if (!seen.has(k)) { seen.add(k); rows.push(k); } }
  if (!rows.length) return `<p class="muted">No node has reported yet: start <code>atlas node-agent --server URL --target T</code> on each node (with <code>ATLAS_TOKEN</code>), or <code>scripts/node-agents-up</code> on the test cluster.</p>`;
  const step = data.bucketSeconds, t0 = Math.floor(data.since / step) * step;
  const columns = Math.max(1, Math.ceil((data.now - t0) / step));
  const w = 820 / columns, h = 22, left = 160;
  const cells = data.buckets.map((b) => {
    const y = rows.indexOf(`${b.target}/${b.node}`), x = Math.floor((b.start - t0) / step);
    const f = share(b.cores, b.capacity);
    const label = `${b.target}/${b.node} ${new Date(b.start * 1000).toLocaleTimeString()}: ${b.cores.toFixed(2)} cores` + (b.capacity ? ` of ${b.capacity}` : "");
    return `<rect data-node="${esc(b.node)}" x="${(left + x * w).toFixed(1)}" y="${y * h + 2}" width="${Math.max(w - 0.5, 1).toFixed(1)}" height="${h - 2}" fill="${heat(f)}"><title>${esc(label)}</title></rect>`;
  }).join("");
  const names = rows.map((r, i) => `<text x="4" y="${i * h + 16}" font-size="12">${esc(r)}</text>`).join("");
  const axis = `<text x="${left}" y="${rows.length * h + 16}" font-size="11" fill="#667085">${new Date(t0 * 1000).toLocaleTimeString()}</text>` +
    `<text x="${left + 820}" y="${rows.length * h + 16}" font-size="11" fill="#667085" text-anchor="end">now</text>`;
  const legend = [0, 0.25, 0.5, 0.75, 1].map((f, i) => `<rect x="${left + 500 + i * 40}" y="${rows.length * h + 24}" width="40" height="10" fill="${heat(f)}"/><text x="${left + 500 + i * 40}" y="${rows.length * h + 46}" font-size="10" fill="#667085">${f * 100} %</text>`).join("");
  return `<svg id="heatmap" data-cells="${data.buckets.length}" viewBox="0 0 990 ${rows.length * h + 52}">${names}${cells}${axis}${legend}</svg>`;
}

function nodesTable(data) {
  if (!data.nodes.length) return "";
  return `<table><thead><tr><th>Target</th><th>Node</th><th>Cores in use</th><th>Of</th><th>Memory (RSS)</th><th>Processes</th><th>Jobs (cores)</th><th>Last sample</th></tr></thead><tbody>` +
    data.nodes.map((n) => {
      const f = share(n.cores, n.capacity), age = data.now - n.time;
      const jobs = Object.entries(n.jobs || {}).map(([j, c]) => `${esc(j)} (${c.toFixed(2)})`).join(", ");
      return `<tr data-node="${esc(n.node)}"><td>${esc(n.target)}</td><td>${esc(n.node)}</td><td>${n.cores.toFixed(2)}${f == null ? "" : ` (${(f * 100).toFixed(0)} %)`}</td>` +
        `<td>${n.capacity ?? ""}</td><td>${n.rssBytes == null ? "" : `${mib(n.rssBytes).toFixed(0)} MiB`}</td><td>${n.processes ?? ""}</td><td>${jobs || '<span class="muted">none</span>'}</td>` +
        `<td class="${age > 60 ? "stale" : ""}">${secs(age)} ago</td></tr>`;
    }).join("") + `</tbody></table>`;
}

async function nodesPage() {
  document.title = "Atlas · nodes";
  const minutes = Number(new URLSearchParams(location.search).get("minutes")) || 60;
  const choices = [15, 60, 360, 1440].map((m) => m === minutes ? `<b>${secs(m * 60)}</b>` : `<a href="/nodes?minutes=${m}">${secs(m * 60)}</a>`).join(" · ");
  app.innerHTML = `<h1>Nodes</h1><p class="muted">Share of each node's cores in use, from its node agent, over the last ${secs(minutes * 60)} (${choices}); live.</p><div class="timeline" id="heat"></div><h2>Now</h2><div id="nodes"></div>`;
  const draw = async () => {
    const data = await api(`/api/v1/nodes?minutes=${minutes}`);
    document.getElementById("heat").innerHTML = heatmap(data);
    document.getElementById("nodes").innerHTML = nodesTable(data);
  };
  await draw();
  setInterval(() => draw().catch(() => {}), 2000);
}

// The services page: each storage service its operator pushes (`atlas operator --server`):
// health, capacity, chunks under goal, each instance's state and restarts, the reconcile
// events; redrawn every 2 s.
const gib = (b) => b >= 1 << 30 ? `${(b / (1 << 30)).toFixed(1)} GiB` : `${mib(b).toFixed(0)} MiB`;
function serviceCard(svc, now) {
  const st = svc.status || {}, spec = svc.spec || {}, age = now - svc.time;
  const used = st.capacityBytes ? st.usedBytes / st.capacityBytes : 0;
  const instances = (st.instances || []).map((i) => `<tr data-instance="${esc(i.name)}"><td>${esc(i.name)}</td><td>${esc(i.state)}${i.markedForRemoval ? " · marked for removal" : ""}</td>` +
    `<td>${i.serving ? "yes" : '<span class="bad">no</span>'}</td><td class="restarts">${i.restarts ?? 0}</td><td class="muted">${esc(i.image)}</td></tr>`).join("");
  const conditions = (st.conditions || []).map((c) => `<li>${esc(c.type)}: <b>${esc(c.status)}</b> (${esc(c.reason)}) ${esc(c.message)}</li>`).join("");
  const events = (st.events || []).slice().reverse().map((e) => `<li>${esc(e)}</li>`).join("");
  return `<section class="service" data-service="${esc(svc.name)}"><h2>${esc(svc.name)} <span class="muted">(${esc(svc.place)})</span> ${badge(st.phase || "Pending")}</h2>` +
    `<p>${esc(st.reason || "")}</p>` +
    `<p><b class="ready">${st.readyChunkServers ?? 0}</b> of ${spec.chunkServers ?? "?"} chunk servers ready · goal ${spec.goal ?? "?"} · ` +
    `<b class="under-goal">${st.underGoalChunks ?? 0}</b> chunks under goal · used ${gib(st.usedBytes || 0)} of ${gib(st.capacityBytes || 0)} ` +
    `<span class="bar"><span style="width:${(used * 100).toFixed(1)}%"></span></span> · master ${esc(st.masterAddress || "-")} · image ${esc(st.currentImage || spec.image || "-")}` +
    (st.failedImage ? ` · <span class="bad">${esc(st.failedImage)} did not start (rolled back)</span>` : "") +
    ` · <span class="${age > 30 ? "stale" : "muted"}">heard from ${secs(Math.max(age, 0))} ago</span></p>` +
    `<table><thead><tr><th>Instance</th><th>State</th><th>Serving</th><th>Restarts</th><th>Image</th></tr></thead><tbody>${instances}</tbody></table>` +
    (conditions ? `<h3>Conditions</h3><ul>${conditions}</ul>` : "") +
    `<h3>Events</h3>${events ? `<ul class="events">${events}</ul>` : '<p class="muted">none yet</p>'}</section>`;
}
async function servicesPage() {
  document.title = "Atlas · services";
  const draw = async () => {
    const data = await api("/api/v1/services");
    app.innerHTML = `<h1>Storage services</h1>` + (data.services.length ? data.services.map((s) => serviceCard(s, data.now)).join("")
      : `<p class="muted">No storage service has reported yet: run <code>atlas operator --local FILE --server URL</code> (or <code>atlas operator --server URL</code> on Kubernetes) with <code>ATLAS_TOKEN</code> set.</p>`);
  };
  await draw();
  setInterval(() => draw().catch(() => {}), 2000);
}

// The tenants page: the caller's tenants and role; a tenant's admins see its members, quotas and
// use, and add, change or remove members (PUT/DELETE /api/v1/tenants/T/members/U).
const roles = ["admin", "member", "viewer"];
const quota = (q) => {
  const hours = [q.runs != null && `${q.runs} run(s) at once`, q.coreHours != null && `${q.coreHours} core-hours`, q.gpuHours != null && `${q.gpuHours} GPU-hours`].filter(Boolean);
  const parts = hours.length ? [hours.join(", ") + ` per ${q.periodDays ?? 30} days`] : [];
  if (q.storageGib != null) parts.push(`${q.storageGib} GiB of run directories`);
  return parts.length ? parts.join(", ") : "no quotas";
};
function tenantCard(t) {
  if (t.role !== "admin") return `<section data-tenant="${esc(t.name)}"><h2>${esc(t.name)}</h2><p>You are a <b>${esc(t.role)}</b>; its admins manage its members.</p></section>`;
  const options = (r) => roles.map((x) => `<option${x === r ? " selected" : ""}>${x}</option>`).join("");
  return `<section data-tenant="${esc(t.name)}"><h2>${esc(t.name)}</h2><p class="muted">Quotas: ${esc(quota(t.quotas))} · now ${t.usage.activeRuns} run(s) active, ${t.usage.coreHours.toFixed(1)} core-hours, ${t.usage.gpuHours.toFixed(1)} GPU-hours, ${t.usage.storageGib.toFixed(2)} GiB stored</p>` +
    `<table><thead><tr><th>Member</th><th>Role</th><th></th></tr></thead><tbody>` +
    t.members.map((m) => `<tr data-user="${esc(m.user)}"><td>${esc(m.user)}</td><td><select class="role">${options(m.role)}</select></td><td><button class="remove">Remove</button></td></tr>`).join("") +
    `</tbody></table><form class="add"><input name="user" placeholder="user name" required> <select name="role">${options("member")}</select> <button>Add</button></form><p class="error" hidden></p></section>`;
}
async function tenantsPage() {
  document.title = "Atlas · tenants";
  const draw = async () => {
    const tenants = await api("/api/v1/tenants");
    app.innerHTML = `<h1>Tenants</h1>` + (tenants.length ? tenants.map(tenantCard).join("") : `<p class="muted">You are in no tenant: your runs are yours alone. The site admin adds you with <code>atlas tenant member add TENANT USER</code>.</p>`);
    for (const section of app.querySelectorAll("section[data-tenant]")) {
      const tenant = section.dataset.tenant, error = section.querySelector(".error");
      const change = async (user, method, role) => {
        const r = await fetch(`/api/v1/tenants/${encodeURIComponent(tenant)}/members/${encodeURIComponent(user)}`, {
          method, credentials: "same-origin", headers: { "Content-Type": "application/json" }, body: method === "PUT" ? JSON.stringify({ role }) : undefined });
        if (!r.ok) { error.hidden = false; error.textContent = (await r.json().catch(() => ({}))).error || r.statusText; return; }
        await draw();
      };
      for (const row of section.querySelectorAll("tr[data-user]")) {
        row.querySelector(".role").addEventListener("change", (e) => change(row.dataset.user, "PUT", e.target.value));
        row.querySelector(".remove").addEventListener("click", () => change(row.dataset.user, "DELETE"));
      }
      const form = section.querySelector("form.add");
      if (form) form.addEventListener("submit", (e) => { e.preventDefault(); change(form.elements.user.value.trim(), "PUT", form.elements.role.value); });
    }
  };
  await draw();
}

const path = location.pathname;
const route = path === "/" ? home() : path.startsWith("/runs/") ? runPage(decodeURIComponent(path.slice(6)))
  : path.startsWith("/experiments/") ? experimentPage(decodeURIComponent(path.slice(13))) : path === "/targets" ? targetsPage() : path === "/nodes" ? nodesPage() : path === "/tenants" ? tenantsPage()
  : path === "/services" ? servicesPage() : Promise.resolve();
route.catch((e) => { app.innerHTML = `<p class="error">${esc(e.message)}</p>`; });
