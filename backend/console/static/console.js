// AuroraSOC operator console. Plain JS, no build step, no CDN. Every value from the
// backend is inserted as text (never as HTML): alert titles and device ids come from
// devices and peers, i.e. from possible attackers.
"use strict";

const state = { token: null, alerts: new Map(), devices: new Map(), door: new Map(),
  site: null, live: false };
const MAX_ALERTS = 200;
const MAX_LOG = 200;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function clock(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return isNaN(d) ? String(iso) : d.toLocaleTimeString();
}

// ---- token -----------------------------------------------------------------------------
function takeTokenFromUrl() {
  const match = location.hash.match(/token=([^&]+)/);
  if (match) {
    sessionStorage.setItem("aurora-token", decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname);  // keep the token out of the URL bar
  }
  state.token = sessionStorage.getItem("aurora-token");
}

function askToken(why) {
  const dialog = document.getElementById("token-dialog");
  document.getElementById("token-why").textContent = why;
  if (!dialog.open) dialog.showModal();
}

document.getElementById("token-form").addEventListener("submit", () => {
  const value = document.getElementById("token-input").value.trim();
  if (value) { sessionStorage.setItem("aurora-token", value); state.token = value; start(); }
});

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (options.body) headers["Content-Type"] = "application/json";
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (response.status === 401) {
    const body = await response.json().catch(() => ({}));
    askToken(body.error || "The API refused the token (401).");
    throw new Error("unauthorised");
  }
  return response;
}

// ---- events log ------------------------------------------------------------------------
function logEvent(text, cls) {
  const list = document.getElementById("events");
  list.prepend(el("li", { class: cls || "" }, new Date().toLocaleTimeString() + "  " + text));
  while (list.children.length > MAX_LOG) list.lastChild.remove();
}

function setStatus(text) { document.getElementById("status-note").textContent = text || ""; }

function setLive(on) {
  state.live = on;
  const pill = document.getElementById("live");
  pill.textContent = on ? "live" : "reconnecting";
  pill.className = "pill " + (on ? "pill-on" : "pill-off");
}

// ---- alerts ----------------------------------------------------------------------------
function addAlert(alert, fresh) {
  if (state.alerts.has(alert.id)) return;
  state.alerts.set(alert.id, alert);
  const federated = alert.origin_site && alert.origin_site !== state.site;
  const origin = federated
    ? el("span", { class: "badge badge-origin", title: "federated from site " + alert.origin_site },
      "from " + alert.origin_site)
    : el("span", { class: "muted" }, "local");
  const row = el("tr", { "data-alert-id": String(alert.id), class: fresh ? "fresh" : "" },
    el("td", {}, clock(alert.created_at)),
    el("td", { class: "sev sev-" + alert.severity }, alert.severity),
    el("td", {}, alert.type),
    el("td", { title: alert.title || "" }, alert.title || ""),
    el("td", {}, alert.device_id || "—"),
    el("td", {}, alert.source || ""),
    el("td", {}, origin));
  const body = document.querySelector("#alerts tbody");
  // Newest first: insert before the first row that is older.
  const created = Date.parse(alert.created_at) || 0;
  let before = null;
  for (const other of body.children) {
    const otherAlert = state.alerts.get(Number(other.dataset.alertId)) ||
      state.alerts.get(other.dataset.alertId);
    if (otherAlert && (Date.parse(otherAlert.created_at) || 0) <= created) { before = other; break; }
  }
  body.insertBefore(row, before);
  while (body.children.length > MAX_ALERTS) body.lastChild.remove();
  document.getElementById("alert-count").textContent = "(" + body.children.length + " shown)";
  renderSummary();
  if (fresh) logEvent(`alert ${alert.severity} ${alert.type}` +
    (federated ? ` from site ${alert.origin_site}` : "") +
    (alert.device_id ? ` on ${alert.device_id}` : ""), "sev-" + alert.severity);
}

async function loadAlerts() {
  const response = await api("/api/v1/alerts?limit=50");
  if (!response.ok) { setStatus("alerts: HTTP " + response.status); return; }
  const body = await response.json();
  for (const alert of body.items.slice().reverse()) addAlert(alert, false);
}

// ---- devices ---------------------------------------------------------------------------
const DOOR_ACTIONS = [["lockdown", "Lockdown", "danger"], ["lockdown_clear", "Clear", ""],
  ["unlock", "Unlock", ""]];

async function command(deviceId, verb) {
  logEvent(`sending ${verb} to ${deviceId}`);  // the cause first: the confirmation may beat the reply
  const response = await api(`/api/v1/cps/devices/${encodeURIComponent(deviceId)}/commands`,
    { method: "POST", body: JSON.stringify({ verb }) });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) logEvent(`${verb} ${deviceId} refused: ${body.error || response.status}`, "sev-high");
  else logEvent(`${verb} accepted by the site for ${deviceId} (request ${body.request_id})`);
}

async function attest(deviceId) {
  logEvent(`sending an attestation challenge to ${deviceId}`);
  const response = await api(`/api/v1/cps/devices/${encodeURIComponent(deviceId)}/attestations`,
    { method: "POST" });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) logEvent(`attestation of ${deviceId} refused: ${body.error || response.status}`, "sev-high");
  else logEvent(`challenge issued to ${deviceId}; waiting for its answer`);
}

function deviceRow(device) {
  const isDoor = /door|access/.test(device.device_type || "");
  const actions = el("td", {});
  if (isDoor) for (const [verb, label, cls] of DOOR_ACTIONS)
    actions.append(el("button", { class: cls, "data-verb": verb,
      onclick: () => command(device.device_id, verb) }, label), " ");
  actions.append(el("button", { "data-verb": "attest", onclick: () => attest(device.device_id) },
    "Attest"));
  const door = state.door.get(device.device_id);
  return el("tr", { "data-device-id": device.device_id },
    el("td", {}, device.device_id),
    el("td", {}, device.device_type || ""),
    el("td", {}, device.board_family || ""),
    el("td", { title: device.firmware_hash || "" }, device.firmware_version || ""),
    el("td", { class: "trust-" + device.trust_status }, device.trust_status),
    el("td", { class: "att-" + (device.attestation_status || "none") }, device.attestation_status || "—"),
    el("td", {}, Math.round(device.risk_score || 0)),
    el("td", {}, clock(device.last_seen)),
    el("td", { class: "door", title: "last lock command the site sent" }, door || (isDoor ? "—" : "")),
    actions);
}

function renderDevice(device, fresh) {
  state.devices.set(device.device_id, device);
  const body = document.querySelector("#devices tbody");
  const row = deviceRow(device);
  if (fresh) row.classList.add("fresh");
  const existing = body.querySelector(`tr[data-device-id="${CSS.escape(device.device_id)}"]`);
  if (existing) existing.replaceWith(row);
  else body.append(row);
  document.getElementById("device-count").textContent = "(" + state.devices.size + ")";
  renderSummary();
}

async function loadDevices() {
  const response = await api("/api/v1/cps/devices");
  if (!response.ok) { setStatus("devices: HTTP " + response.status); return; }
  const body = await response.json();
  for (const device of body.items) renderDevice(device, false);
}

const pendingDevice = new Map();
function refreshDevice(deviceId) {
  // Several events for one device in a burst cost one GET.
  if (pendingDevice.has(deviceId)) return;
  pendingDevice.set(deviceId, setTimeout(async () => {
    pendingDevice.delete(deviceId);
    const response = await api(`/api/v1/cps/devices/${encodeURIComponent(deviceId)}`);
    if (response.ok) renderDevice(await response.json(), true);
  }, 150));
}

function onDeviceEvent(event) {
  const data = event.data || {};
  if (event.kind === "command_sent") {
    state.door.set(event.device_id, data.verb + (data.reason ? " (" + data.reason + ")" : ""));
    const known = state.devices.get(event.device_id);
    if (known) renderDevice(known, true);  // the door cell at once, the rest after the GET
    logEvent(`confirmed: ${data.verb} published to ${event.device_id}` +
      (data.reason ? ` by ${data.reason}` : ""), "ok");
  } else if (event.kind === "attestation_result") {
    logEvent(`attestation of ${event.device_id}: ${data.status || data.result || "?"}` +
      (data.reason ? ` (${data.reason})` : ""), "att-" + (data.status || data.result));
  } else if (event.kind === "badge_read") {
    logEvent(`badge ${data.uid || data.badge_uid || "?"} at ${event.device_id}: ` +
      (data.granted === undefined ? (data.result || "") : (data.granted ? "granted" : "denied")));
  }
  refreshDevice(event.device_id);
}

// ---- summary ----------------------------------------------------------------------------
function count(values, key) {
  const out = {};
  for (const v of values) out[v[key]] = (out[v[key]] || 0) + 1;
  return out;
}

function renderSummary() {
  const devices = [...state.devices.values()];
  const trust = count(devices, "trust_status");
  const severity = count([...state.alerts.values()], "severity");
  const federated = [...state.alerts.values()].filter(
    (a) => a.origin_site && a.origin_site !== state.site).length;
  const lockdown = [...state.door.values()].filter((v) => v.startsWith("lockdown ")).length;
  const tiles = [
    ["devices", devices.length, ""], ["trusted", trust.trusted || 0, "trust-trusted"],
    ["firmware drift", trust.drift_detected || 0, (trust.drift_detected ? "trust-drift_detected" : "")],
    ["critical alerts", severity.critical || 0, severity.critical ? "sev-critical" : ""],
    ["high alerts", severity.high || 0, severity.high ? "sev-high" : ""],
    ["from peers", federated, ""], ["doors in lockdown", lockdown, lockdown ? "sev-high" : ""],
  ];
  document.getElementById("summary").replaceChildren(...tiles.map(([name, value, cls]) =>
    el("div", { "data-tile": name }, el("b", { class: cls }, value), name)));
}

// ---- topology --------------------------------------------------------------------------
function renderTopology(topology) {
  const map = document.getElementById("topology");
  map.replaceChildren();
  document.getElementById("topology-note").hidden = true;
  const nodes = topology.nodes || [];
  const positions = new Map();
  const cx = 210, cy = 110, r = nodes.length > 1 ? 75 : 0;
  nodes.forEach((node, i) => {
    const angle = Math.PI + (2 * Math.PI * i) / Math.max(nodes.length, 1);
    positions.set(node.site_id, [cx + r * 1.6 * Math.cos(angle), cy + r * Math.sin(angle)]);
  });
  for (const link of topology.links || []) {
    const a = positions.get(link.site_a), b = positions.get(link.site_b);
    if (!a || !b) continue;
    map.append(svg("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], "stroke-width": 4,
      class: "link link-" + (link.status || "unknown"), "data-link": link.link_id,
      "data-status": link.status || "unknown" }));
    const label = (link.status || "unknown") +
      (link.latency_ms !== null && link.latency_ms !== undefined ? ` · ${Math.round(link.latency_ms)} ms` : "");
    map.append(svg("text", { x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 10,
      "text-anchor": "middle", class: "link-label" }, label));
  }
  for (const node of nodes) {
    const [x, y] = positions.get(node.site_id);
    const colour = node.is_local ? "#58a6ff" : ({ healthy: "#3fb950", degraded: "#d29922",
      down: "#f85149", online: "#3fb950", offline: "#f85149" }[node.status] || "#8593a3");
    map.append(svg("circle", { cx: x, cy: y, r: 26, fill: "#10161d", stroke: colour,
      "stroke-width": 3, "data-site": node.site_id }));
    map.append(svg("text", { x, y: y + 4, "text-anchor": "middle" }, node.site_id));
    map.append(svg("text", { x, y: y + 44, "text-anchor": "middle", class: "muted" },
      node.is_local ? "this site" : (node.status || "")));
  }
}

// ---- sentinel --------------------------------------------------------------------------
function showSentinel() { document.getElementById("sentinel-panel").hidden = false; }

function onSecurityEvent(event) {
  showSentinel();
  const list = document.getElementById("security-events");
  list.querySelector("li.muted")?.remove();
  list.prepend(el("li", { class: "sev-" + event.severity },
    `${clock(event.at || event.last_at)} ${event.severity} ${event.stage}/${event.rule} ` +
    `client ${event.client_id} ×${event.count}`));
  while (list.children.length > MAX_LOG) list.lastChild.remove();
}

function number(value) {
  return typeof value === "number" ? value.toLocaleString() : "?";
}

function renderSentinel(summary) {
  showSentinel();
  // Per region: the node's client connections, or "down" and why (in the tooltip).
  const regions = (summary.regions || []).map((region) => {
    const up = region.status === "up";
    const title = up ? `${region.services} service connection(s) not counted` : region.reason;
    return el("div", { "data-region": region.region, "data-status": region.status, title,
      class: up ? "" : "region-down" },
      el("b", { class: up ? "" : "sev-high" }, up ? number(region.clients) : "down"), region.region);
  });
  document.getElementById("sentinel-regions").replaceChildren(...regions);
  const counters = summary.counters || {};
  const cls = { flagged: "sev-medium", quarantined: "sev-high" };
  document.getElementById("sentinel-counts").replaceChildren(
    ...["inspected", "delivered", "flagged", "quarantined"].map((name) =>
      el("div", { "data-counter": name },
        el("b", { class: counters[name] ? (cls[name] || "") : "" }, number(counters[name])), name)));
  document.getElementById("sentinel-note").textContent =
    summary.counters_note ? "(counters: " + summary.counters_note + ")" : "";
}

// ---- live stream -----------------------------------------------------------------------
function setSite(siteId) {
  state.site = siteId;
  document.getElementById("site-name").textContent = "· site " + siteId;
  document.title = "AuroraSOC · site " + siteId;
}

const HANDLERS = {
  hello: (data) => { setSite(data.site_id); if (data.sentinel) showSentinel(); },
  alert: (data) => addAlert(data, true),
  alerts_changed: () => loadAlerts(),
  device: onDeviceEvent,
  topology: renderTopology,
  security_event: onSecurityEvent,
  sentinel: renderSentinel,
  status: (data) => setStatus(Object.entries(data).map(([k, v]) => `${k}: ${v}`).join("; ")),
};

function dispatch(frame) {
  let event = "message", data = "";
  for (const line of frame.split("\n")) {
    if (line.startsWith("event:")) event = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data || !HANDLERS[event]) return;
  try { HANDLERS[event](JSON.parse(data)); }
  catch (error) { console.warn("console: bad event", event, error); }
}

async function follow() {
  // fetch() instead of EventSource: it can send the Authorization header, so the token
  // never travels in a URL (logs, history, Referer).
  let delay = 500;
  for (;;) {
    try {
      const response = await api("/api/v1/console/events", { headers: { Accept: "text/event-stream" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      setLive(true); delay = 500;
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          dispatch(buffer.slice(0, cut));
          buffer = buffer.slice(cut + 2);
        }
      }
    } catch (error) {
      if (error.message === "unauthorised") { setLive(false); return; }
    }
    setLive(false);
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, 5000);
  }
}

async function start() {
  try {
    // /healthz needs no token and names the site: an alert's origin badge compares to it.
    const health = await fetch("/healthz").then((r) => r.json()).catch(() => ({}));
    if (health.site_id) setSite(health.site_id);
    await Promise.all([loadAlerts(), loadDevices()]);
    renderSummary();
  } catch (error) {
    if (error.message === "unauthorised") return;
    setStatus("could not load: " + error.message);
  }
  follow();
}

takeTokenFromUrl();
start();
