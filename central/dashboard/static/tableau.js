// Operator dashboard: draws the fleet snapshot pushed by central over Server-Sent Events.
// No library and nothing fetched from outside: the chart is inline SVG built here.
"use strict";

const PREFIX = document.body.dataset.prefix;
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#000091", "#18753c", "#b34000", "#6a6af4", "#a94645", "#009081", "#7d4e5b",
  "#716043", "#8585f6", "#c3992a"];
const STATUS_FR = { online: "En ligne", offline: "Hors ligne", unknown: "Inconnu" };
const SENSOR_FR = { ready: "prêt", absent: "non connecté", error: "en erreur", unknown: "inconnu" };

function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== null) node.textContent = text;
  return node;
}

function svg(tag, attrs = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== null) node.textContent = text;
  return node;
}

function duration(s) {
  if (s === null || s === undefined) return "–";
  s = Math.max(0, Math.floor(s));
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}`;
  return `${Math.floor(s / 86400)} j`;
}

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const gib = n / 2 ** 30;
  return gib >= 1 ? `${gib.toFixed(1).replace(".", ",")} Gio` : `${Math.round(n / 2 ** 20)} Mio`;
}

function setText(id, value) { document.getElementById(id).textContent = String(value); }

function renderSummary(snap) {
  setText("n-stations", snap.summary.devices);
  setText("n-en-ligne", snap.summary.online);
  setText("n-hors-ligne", snap.summary.offline);
  setText("n-alertes", snap.alerts.length);
  setText("n-dossiers", snap.summary.enrolments);
}

function renderAlerts(alerts) {
  const list = document.getElementById("alertes");
  list.replaceChildren();
  if (alerts.length === 0) list.append(el("li", { class: "vide" }, "Aucune alerte."));
  for (const a of alerts) {
    const li = el("li", { class: a.kind, "data-kind": a.kind, "data-device": a.device_id });
    li.append(el("span", { class: "station" }, a.device_id), document.createTextNode(a.message));
    list.append(li);
  }
}

function renderDevices(devices, alerts) {
  const flagged = new Set(alerts.map((a) => a.device_id));
  const body = document.querySelector("#stations tbody");
  body.replaceChildren();
  for (const d of devices) {
    const status = d.registry === "revoked" ? "revoked" : d.status;
    const tr = el("tr", { "data-device": d.id, "data-status": status });
    if (flagged.has(d.id)) tr.classList.add("en-alerte");
    const badge = el("span", { class: `etat etat-${status}` },
      status === "revoked" ? "Révoquée" : STATUS_FR[status] ?? status);
    const cells = [
      el("td", {}, d.id), el("td", {}, d.department), el("td", { class: "etat-cellule" }),
      el("td", {}, duration(d.last_seen_s)),
      el("td", { class: "nombre" }, d.queue_depth ?? "–"),
      el("td", {}, duration(d.oldest_pending_age_s)),
      el("td", {}, d.sensor ? SENSOR_FR[d.sensor] ?? d.sensor : "–"),
      el("td", {}, d.version || "–"), el("td", { class: "nombre" }, bytes(d.disk_free_bytes)),
    ];
    cells[2].append(badge);
    if (status === "offline" && d.status_for_s !== null) {
      cells[2].append(el("small", { class: "depuis" }, ` depuis ${duration(d.status_for_s)}`));
    }
    tr.append(...cells);
    body.append(tr);
  }
}

function renderHourly(hourly) {
  const departments = [...new Set(hourly.flatMap((h) => Object.keys(h.departments)))].sort();
  const colour = (dep) => COLOURS[departments.indexOf(dep) % COLOURS.length];
  const width = 720, height = 200, left = 34, right = 20, bottom = 22, top = 8;
  const max = Math.max(2, ...hourly.map((h) => h.total + (h.total % 2))); // even: integer ticks
  const step = (width - left - right) / hourly.length;
  const scale = (height - bottom - top) / max;
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": "Dossiers reçus par heure" });
  for (const tick of [0, Math.ceil(max / 2), max]) {
    const y = height - bottom - tick * scale;
    chart.append(svg("line", { x1: left, x2: width - right, y1: y, y2: y, stroke: "#e5e5e5" }));
    chart.append(svg("text", { x: left - 6, y: y + 4, "text-anchor": "end" }, tick));
  }
  hourly.forEach((h, i) => {
    let y = height - bottom;
    const x = left + i * step + 2;
    for (const dep of departments) {
      const n = h.departments[dep] ?? 0;
      if (n === 0) continue;
      const bar = svg("rect", { x, y: y - n * scale, width: Math.max(1, step - 4), height: n * scale,
        fill: colour(dep), "data-hour": h.start, "data-department": dep });
      bar.append(svg("title", {}, `${dep} : ${n} dossier(s)`));
      chart.append(bar);
      y -= n * scale;
    }
    if ((hourly.length - 1 - i) % 3 === 0) { // the current hour always has its label
      const hour = new Date(h.start).toLocaleTimeString("fr-FR", { hour: "2-digit", minute: "2-digit" });
      chart.append(svg("text", { x: x + step / 2, y: height - 6, "text-anchor": "middle" }, hour));
    }
  });
  document.getElementById("graphique-heures").replaceChildren(chart);
  const legend = document.getElementById("legende");
  legend.replaceChildren();
  for (const dep of departments) {
    const item = el("span");
    const swatch = el("i");
    swatch.style.background = colour(dep);
    item.append(swatch, document.createTextNode(`Dépt ${dep}`));
    legend.append(item);
  }
}

function renderBars(tableId, rows, empty) {
  const body = document.querySelector(`#${tableId} tbody`);
  body.replaceChildren();
  if (rows.length === 0) {
    body.append(el("tr", {}, null));
    body.lastChild.append(el("td", { class: "vide" }, empty));
    return;
  }
  const max = Math.max(1, ...rows.map((r) => r.count));
  for (const r of rows) {
    const tr = el("tr", { "data-key": r.key });
    const bar = el("td", { class: "barre" });
    const span = el("span");
    span.style.width = `${(100 * r.count) / max}%`;
    if (r.count === 0) span.classList.add("zero");
    bar.append(span);
    const label = el("td", {}, r.label);
    if (r.title) label.append(el("small", { class: "libelle" }, r.title));
    tr.append(label, el("td", { class: "nombre" }, r.count), bar);
    body.append(tr);
  }
}

function render(snap) {
  renderSummary(snap);
  renderAlerts(snap.alerts);
  renderDevices(snap.devices, snap.alerts);
  renderHourly(snap.hourly);
  renderBars("departements",
    Object.entries(snap.departments).map(([dep, n]) => ({ key: dep, label: `Dépt ${dep}`, count: n })),
    "Aucun dossier reçu sur la période.");
  renderBars("rejets",
    snap.rejections.map((r) => ({ key: r.kind, label: r.kind, title: r.label, count: r.count })),
    "Aucun rejet.");
  renderBars("statuts",
    snap.request_stages.map((s) => ({ key: s.stage, label: s.label, count: s.count })),
    "Aucune demande.");
  document.body.dataset.version = snap.version;
}

function connect() {
  const live = document.getElementById("direct");
  const source = new EventSource(`${PREFIX}/flux`);
  source.addEventListener("snapshot", (event) => {
    const snap = JSON.parse(event.data);
    render(snap);
    const time = new Date().toLocaleTimeString("fr-FR");
    if (snap.feed_connected) {
      live.className = "direct ok";
      live.textContent = `En direct — ${time}`;
    } else {
      live.className = "direct attente";
      live.textContent = `Service central déconnecté du broker MQTT — ${time}`;
    }
  });
  source.addEventListener("signout", () => {
    source.close();
    window.location.assign(`${PREFIX}/connexion`);
  });
  source.onerror = async () => {
    live.className = "direct attente";
    live.textContent = "Flux interrompu : reconnexion…";
    if (source.readyState !== EventSource.CLOSED) return; // the browser retries by itself
    const answer = await fetch(`${PREFIX}/etat.json`).catch(() => null);
    if (answer && answer.status === 401) window.location.assign(`${PREFIX}/connexion`);
    else setTimeout(connect, 3000); // refused for another reason: try again later
  };
}

connect();
