// fleetstream live dashboard: REST snapshots + /v1/stream (server-sent events). No build step.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const STATUSES = ["IDLE", "MOVING", "WORKING", "CHARGING", "ERROR", "OFFLINE", "UNKNOWN"];
const ACTIVE = new Set(["CREATED", "WAITING", "QUEUED", "ASSIGNED", "DISPATCHED", "EXECUTING", "RETRYING"]);
const DONE = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "TIMED_OUT"]);
const LABELLED = new Set(["STATION", "PICKUP", "DROPOFF"]);

const state = { site: "", token: "", nodes: new Map(), robots: new Map(), tasks: new Map(), conflicts: new Map(),
  alerts: 0, source: null, events: 0, scale: 1 };

function el(tag, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

async function api(path) {
  const r = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
  if (r.status === 404) return null;
  if (!r.ok) {
    const body = await r.json().catch(() => ({}));
    throw new Error(`${r.status} ${body.message || r.statusText}`);
  }
  return r.json();
}

// ------------------------------------------------------------------------------------------ the map
function drawMap(map) {
  for (const g of ["zones", "lanes", "nodes", "marks"]) $(g).replaceChildren();
  state.nodes.clear();
  $("map-empty").style.display = map ? "none" : "grid";
  if (!map) { $("map-empty").textContent = `No map for site ${state.site} yet.`; return; }
  const xs = map.nodes.map((n) => n.x), ys = map.nodes.map((n) => n.y);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  const w = Math.max(maxX - minX, 1), h = Math.max(maxY - minY, 1), pad = Math.max(w, h) * 0.08;
  state.scale = Math.max(w, h) / 60;
  // SVG y grows downwards; the map's y grows upwards.
  $("map").setAttribute("viewBox", `${minX - pad} ${-maxY - pad} ${w + 2 * pad} ${h + 2 * pad}`);
  for (const n of map.nodes) state.nodes.set(n.id, n);
  for (const z of map.zones || []) {
    el("polygon", { class: `zone ${z.kind}`, points: z.polygon.map((p) => `${p.x},${-p.y}`).join(" ") }, $("zones"))
      .appendChild(titled(`zone ${z.id} (${z.kind})`));
  }
  for (const l of map.lanes) {
    const a = state.nodes.get(l.from_node), b = state.nodes.get(l.to_node);
    if (!a || !b) continue;
    el("line", { class: `lane${l.bidirectional ? "" : " oneway"}`, x1: a.x, y1: -a.y, x2: b.x, y2: -b.y,
      "stroke-width": 0.6 * state.scale, "data-id": l.id }, $("lanes"));
  }
  for (const n of map.nodes) {
    const c = el("circle", { class: `node ${n.kind || "WAYPOINT"}`, cx: n.x, cy: -n.y, r: 0.7 * state.scale,
      "stroke-width": 0.15 * state.scale }, $("nodes"));
    c.appendChild(titled(`${n.name || n.id} (${n.kind || "WAYPOINT"})`));
    // Only docks and stations are labelled (parking spots and chargers are many and close together: their
    // names are in the tooltip); centred above the node, or below it in the lower half of the map.
    if (LABELLED.has(n.kind)) {
      const below = n.y < (minY + maxY) / 2;
      el("text", { class: "node-label", x: n.x, y: -n.y + (below ? 2.2 : -1.3) * state.scale, "text-anchor": "middle",
        style: `font-size:${0.9 * state.scale}px` }, $("nodes")).textContent = n.name || n.id;
    }
  }
}

// Robot ids usually start with the site id ("demo-amr-004"): the label drops it (the tooltip keeps the full id).
function shortName(id) { return id.startsWith(`${state.site}-`) && id.length > state.site.length + 1 ? id.slice(state.site.length + 1) : id; }

function titled(text) { const t = document.createElementNS(SVG, "title"); t.textContent = text; return t; }

function placeRobot(r) {
  let g = document.querySelector(`#robots [data-id="${CSS.escape(r.robot_id)}"]`);
  if (!g) {
    g = el("g", { class: "robot", "data-id": r.robot_id }, $("robots"));
    el("circle", { class: "ring", r: 2.2 * state.scale }, g);
    el("circle", { class: "body", r: 1.4 * state.scale }, g);
    el("text", { x: 1.7 * state.scale, y: -1.2 * state.scale, style: `font-size:${1.1 * state.scale}px` }, g);
    g.appendChild(titled(""));
  }
  const pose = r.pose || { x: 0, y: 0 };
  g.style.transform = `translate(${pose.x}px, ${-pose.y}px)`;
  g.querySelector("circle.body").setAttribute("class", `body s-${r.status || "UNKNOWN"}`);
  g.querySelector("text").textContent = shortName(r.robot_id);
  g.querySelector("title").textContent =
    `${r.robot_id} · ${r.status} · battery ${Math.round((r.battery ?? 0) * 100)}%${r.task_id ? " · task " + r.task_id : ""}`;
  g.classList.toggle("conflict", [...state.conflicts.values()].some((c) => (c.robot_ids || []).includes(r.robot_id)));
}

// ----------------------------------------------------------------------------------------- panels
function renderTasks() {
  const rows = [...state.tasks.values()].sort((a, b) => (b.updated_at || 0) - (a.updated_at || 0)).slice(0, 200);
  $("tasks").tBodies[0].replaceChildren(...rows.map((t) => {
    const tr = document.createElement("tr");
    // A task Open-RMF created (or runs) carries RMF's id: shown beside ours, in full in the tooltip.
    const ext = t.external_id ? `<span class="ext" title="Open-RMF task ${esc(t.external_id)}">${esc(t.external_id.slice(0, 24))}</span>` : "";
    tr.dataset.id = t.task_id;
    tr.innerHTML = `<td class="mono" title="${esc(t.task_id)}">${esc(t.task_id.slice(0, 8))}${ext}</td>` +
      `<td><span class="badge ${esc(t.state)}">${esc(t.state)}</span></td><td>${esc(t.robot_id || "–")}</td>` +
      `<td>${t.updated_at ? new Date(t.updated_at).toLocaleTimeString() : ""}</td>`;
    return tr;
  }));
  $("tasks-count").textContent = `(${state.tasks.size})`;
}

function feed(kind, cls, text, at) {
  const li = document.createElement("li");
  li.innerHTML = `<span class="sev ${esc(cls)}">${esc(kind)}</span><span>${esc(text)}</span>` +
    `<time>${new Date(at || Date.now()).toLocaleTimeString()}</time>`;
  $("feed").prepend(li);
  while ($("feed").children.length > 100) $("feed").lastChild.remove();
}

function markConflict(c) {
  const n = c.node_id && state.nodes.get(c.node_id);
  if (n) {
    const m = el("circle", { class: "mark", cx: n.x, cy: -n.y, r: 3 * state.scale, "stroke-width": 0.4 * state.scale }, $("marks"));
    setTimeout(() => m.remove(), Math.max(5000, (c.window_end || 0) - Date.now()));
  }
  const lane = c.lane_id && document.querySelector(`#lanes [data-id="${CSS.escape(c.lane_id)}"]`);
  if (lane) { lane.style.stroke = "var(--error)"; setTimeout(() => (lane.style.stroke = ""), 5000); }
  setTimeout(() => { state.conflicts.delete(c.conflict_id); refresh(); }, Math.max(5000, (c.window_end || 0) - Date.now()));
}

function counters() {
  const robots = [...state.robots.values()];
  const count = (...s) => robots.filter((r) => s.includes(r.status)).length;
  $("c-robots").textContent = robots.length;
  $("c-moving").textContent = count("MOVING", "WORKING");
  $("c-charging").textContent = count("CHARGING");
  $("c-offline").textContent = count("OFFLINE", "ERROR");
  const tasks = [...state.tasks.values()];
  $("c-tasks").textContent = tasks.filter((t) => ACTIVE.has(t.state)).length;
  $("c-done").textContent = tasks.filter((t) => DONE.has(t.state)).length;
  $("c-conflicts").textContent = state.conflicts.size;
  $("c-alerts").textContent = state.alerts;
}

function refresh() { for (const r of state.robots.values()) placeRobot(r); counters(); }

const esc = (s) => String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

// ------------------------------------------------------------------------------------ data flow
async function loadSnapshot() {
  const site = encodeURIComponent(state.site);
  const [map, robots, tasks, alerts, conflicts] = await Promise.all([
    api(`/v1/sites/${site}/map`), api(`/v1/robots?site_id=${site}&limit=500`), api(`/v1/tasks?site_id=${site}&limit=200`),
    api(`/v1/alerts?site_id=${site}&limit=30`), api(`/v1/conflicts?site_id=${site}&limit=30`),
  ]);
  drawMap(map);
  $("robots").replaceChildren();
  state.robots.clear(); state.tasks.clear(); state.conflicts.clear(); $("feed").replaceChildren();
  for (const r of robots?.items || []) state.robots.set(r.robot_id, r);
  for (const t of tasks?.items || []) state.tasks.set(t.task_id, t);
  state.alerts = (alerts?.items || []).length;
  for (const a of (alerts?.items || []).reverse()) feed(a.kind, a.severity, `${a.subject_id}: ${a.message}`, a.occurred_at);
  for (const c of (conflicts?.items || []).reverse()) feed(c.kind, "conflict", `${(c.robot_ids || []).join(" × ")} ${c.resolution || ""}`, c.occurred_at);
  renderTasks(); refresh();
}

function handlers(source) {
  source.addEventListener("robot.status", (e) => {
    const r = JSON.parse(e.data); state.robots.set(r.robot_id, r); placeRobot(r); tick(e);
  });
  source.addEventListener("task.event", (e) => {
    const t = JSON.parse(e.data);
    if (t.kind === "TRANSITION") {
      const known = state.tasks.get(t.task_id) || {};
      state.tasks.set(t.task_id, { ...known, task_id: t.task_id, state: t.state, robot_id: t.robot_id,
        updated_at: t.occurred_at, external_id: t.external_id || known.external_id });
      renderTasks();
    }
    tick(e);
  });
  source.addEventListener("conflict", (e) => {
    const c = JSON.parse(e.data); state.conflicts.set(c.conflict_id, c);
    feed(c.kind, "conflict", `${(c.robot_ids || []).join(" × ")} at ${c.node_id || c.lane_id || c.zone_id || "?"} → ${c.resolution}`, c.occurred_at);
    markConflict(c); refresh(); tick(e);
  });
  source.addEventListener("alert", (e) => {
    const a = JSON.parse(e.data); state.alerts += 1;
    feed(a.kind, a.severity, `${a.subject_id}: ${a.message}`, a.occurred_at); tick(e);
  });
  source.addEventListener("decision", (e) => tick(e));
  source.addEventListener("reset", () => loadSnapshot().catch(showError));
}

function tick(e) { state.events += 1; $("last-id").textContent = e.lastEventId ? `at ${e.lastEventId.slice(0, 60)}` : ""; counters(); }

function setConn(cls, text) { $("conn").className = `conn ${cls}`; $("conn").textContent = text; }
function showError(err) { setConn("err", String(err.message || err).slice(0, 60)); }

async function connect() {
  if (state.source) state.source.close();
  localStorage.setItem("fleet.site", state.site);
  localStorage.setItem("fleet.token", state.token);
  setConn("off", "loading…");
  try { await loadSnapshot(); } catch (err) { showError(err); return; }
  // EventSource cannot send headers: the token goes as access_token (accepted on /v1/stream only).
  const url = `/v1/stream?site_id=${encodeURIComponent(state.site)}&access_token=${encodeURIComponent(state.token)}`;
  const source = new EventSource(url);
  state.source = source;
  handlers(source);
  source.onopen = () => setConn("on", "live");
  source.onerror = () => setConn(source.readyState === EventSource.CLOSED ? "err" : "off", source.readyState === EventSource.CLOSED ? "closed" : "reconnecting…");
}

setInterval(() => { $("c-rate").textContent = state.events; state.events = 0; }, 1000);

$("legend").innerHTML = STATUSES.map((s) => `<span><i class="s-${s}" style="background:var(--${s.toLowerCase()})"></i>${s.toLowerCase()}</span>`).join("")
  + `<span><i style="background:var(--error);opacity:.5"></i>no-go zone</span>`;

$("connect").addEventListener("submit", (e) => {
  e.preventDefault();
  state.site = $("site").value.trim(); state.token = $("token").value.trim();
  if (state.site && state.token) connect();
});

(() => {
  const params = new URLSearchParams(location.search);
  $("site").value = params.get("site") || localStorage.getItem("fleet.site") || "";
  $("token").value = params.get("token") || localStorage.getItem("fleet.token") || "";
  if (params.has("token")) history.replaceState(null, "", location.pathname + (params.get("site") ? `?site=${params.get("site")}` : ""));
  if ($("site").value && $("token").value) $("connect").requestSubmit();
})();
