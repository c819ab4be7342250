// Agent console: talks to the daemon's JSON API; the token lives in sessionStorage only.
"use strict";

const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem("dr-token");
let current = null; // the session view being shown

async function api(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (token) headers["Authorization"] = "Bearer " + token;
  const resp = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = {};
  try { data = await resp.json(); } catch (e) { data = {}; }
  if (!resp.ok) {
    const err = new Error((data.error && data.error.message) || ("Erreur " + resp.status));
    err.code = data.error && data.error.code;
    err.status = resp.status;
    if (resp.status === 401 && err.code === "not_signed_in") signedOut();
    throw err;
  }
  return data;
}

function say(text, kind) {
  const m = $("message");
  m.textContent = text || "";
  m.className = kind || "";
  m.hidden = !text;
}

function show(id) {
  for (const s of ["signin", "home", "session"]) $(s).hidden = s !== id;
  $("statusbar").hidden = id === "signin";
}

function signedOut() {
  token = null;
  sessionStorage.removeItem("dr-token");
  show("signin");
}

async function refreshStatus() {
  if (!token) return;
  try {
    const s = await api("GET", "/api/status");
    const link = $("st-link");
    link.textContent = "Lien : " + (s.link.online ? "en ligne" : "hors ligne");
    link.className = s.link.online ? "ok" : "bad";
    $("st-queue").textContent = "File : " + s.queue.depth + " en attente" + (s.queue.alert ? " (alerte)" : "");
    $("st-queue").className = s.queue.alert ? "bad" : "ok";
    $("st-sensor").textContent = "Capteur : " + s.sensor_fr;
    $("st-sensor").className = s.sensor === "ready" ? "ok" : "bad";
    $("st-numbers").textContent = "Numéros : " + s.numbers_free;
    const rejected = $("st-rejected");
    rejected.hidden = !s.rejections || !s.rejections.length;
    if (!rejected.hidden) {
      rejected.textContent = "Dossiers refusés par le service central : " + s.rejections.length;
      rejected.title = s.rejections.map((r) => r.message).join("\n");
    }
  } catch (e) { /* shown on the next action */ }
}

async function home() {
  current = null;
  show("home");
  const list = $("open-sessions");
  list.textContent = "";
  const data = await api("GET", "/api/sessions");
  for (const s of data.sessions) {
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "Reprendre le dossier du " + new Date(s.created_at).toLocaleString("fr-FR") + " (" + s.step + ")";
    b.addEventListener("click", () => render(s));
    li.appendChild(b);
    list.appendChild(li);
  }
}

function render(view) {
  current = view;
  show("session");
  for (const li of document.querySelectorAll("#steps li")) li.classList.toggle("current", li.dataset.step === view.step);
  for (const step of ["prerequest", "documents", "fingers", "summary", "done"]) $("step-" + step).hidden = view.step !== step;
  $("abort").hidden = view.step === "done" || view.step === "aborted";
  if (view.step === "aborted") { say("Dossier abandonné.", "info"); home(); return; }
  if (view.prerequest) {
    const p = view.prerequest;
    const dl = $("holder");
    dl.textContent = "";
    const rows = [["Nom", p.surname], ["Prénoms", p.given_names], ["Né(e) le", new Date(p.birth_date).toLocaleDateString("fr-FR")], ["Motif", p.reason_fr], ["Pré-demande", p.number + (p.verified_online ? "" : " (non vérifiée : hors connexion)")]];
    for (const [k, v] of rows) { const dt = document.createElement("dt"); dt.textContent = k; const dd = document.createElement("dd"); dd.textContent = v; dl.append(dt, dd); }
  }
  if (view.step === "documents") {
    const box = $("documents-list");
    box.textContent = "";
    for (const [code, label] of Object.entries(view.documents_fr)) {
      const l = document.createElement("label");
      const c = document.createElement("input");
      c.type = "checkbox"; c.value = code; c.dataset.testid = "doc-" + code; c.setAttribute("data-testid", "doc-" + code);
      c.checked = !!view.documents[code];
      l.append(c, " " + label);
      box.appendChild(l);
    }
    $("stamp-row").hidden = !view.stamp_required;
  }
  const fingers = view.fingers;
  $("fingers-table-wrap").hidden = !fingers || !fingers.fingers.length;
  if (fingers) {
    const tbody = document.querySelector("#fingers-table tbody");
    tbody.textContent = "";
    for (const f of fingers.fingers) {
      const tr = document.createElement("tr");
      const state = f.captured ? "Enregistrée (qualité " + f.quality + ")" : (f.exception_fr || "En cours");
      for (const text of [f.name_fr, f.attempts.join(", "), state]) { const td = document.createElement("td"); td.textContent = text; tr.appendChild(td); }
      tbody.appendChild(tr);
    }
    if (fingers.current) {
      const name = fingers.current.name_fr;
      const article = /^[aeiouyéè]/.test(name) ? "l'" : "le ";
      $("finger-current").textContent = "Posez " + article + name + " à plat sur le capteur — essai " + (fingers.current.attempts + 1) + " sur " + fingers.current.max_attempts;
    }
    const sel = $("exception-code");
    if (!sel.options.length) {
      for (const [code, label] of Object.entries(view.exceptions_fr)) { const o = document.createElement("option"); o.value = code; o.textContent = label; sel.appendChild(o); }
    }
  }
  const last = view.last_capture;
  if (last && view.step === "fingers" || last && view.step === "summary") {
    $("quality").value = last.quality;
    $("quality-value").textContent = last.quality + " / 100";
    $("capture-outcome").textContent = last.name_fr + " : " + last.message_fr;
    const ul = $("advice"); ul.textContent = "";
    for (const a of last.advice_fr) { const li = document.createElement("li"); li.textContent = a; ul.appendChild(li); }
    loadPreview(view.id);
  } else {
    $("preview").hidden = true; $("quality").value = 0; $("quality-value").textContent = ""; $("capture-outcome").textContent = ""; $("advice").textContent = "";
  }
  if (view.step === "summary") {
    const s = $("summary"); s.textContent = "";
    const p = view.prerequest;
    const lines = ["Demandeur : " + p.surname.toUpperCase() + " " + p.given_names, "Motif : " + p.reason_fr,
      "Pièces : " + Object.keys(view.documents).map((d) => view.documents_fr[d]).join(", ")];
    if (view.stamp) lines.push("Timbre fiscal : " + view.stamp);
    if (fingers && fingers.under_age) lines.push("Moins de 12 ans : pas d'empreintes.");
    for (const f of (fingers ? fingers.fingers : [])) lines.push(f.name_fr + " : " + (f.captured ? "enregistrée (qualité " + f.quality + ")" : f.exception_fr));
    for (const t of lines) { const para = document.createElement("p"); para.textContent = t; s.appendChild(para); }
  }
  if (view.step === "done") {
    $("request-number").textContent = view.request_number;
    $("offline-note").hidden = !view.offline;
    $("receipt-link").removeAttribute("href");
    $("receipt-link").onclick = (ev) => { ev.preventDefault(); openReceipt(view.id); };
  }
}

async function loadPreview(id) {
  const resp = await fetch("/api/sessions/" + id + "/preview.png", { headers: { "Authorization": "Bearer " + token } });
  if (!resp.ok) { $("preview").hidden = true; return; }
  const blob = await resp.blob();
  const img = $("preview");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(blob);
  img.hidden = false;
}

async function openReceipt(id) {
  const resp = await fetch("/api/sessions/" + id + "/receipt.pdf", { headers: { "Authorization": "Bearer " + token } });
  const blob = await resp.blob();
  window.open(URL.createObjectURL(blob), "_blank");
}

function action(fn) {
  return async (ev) => {
    if (ev) ev.preventDefault();
    const buttons = document.querySelectorAll("button");
    for (const b of buttons) b.disabled = true;
    try { say(""); await fn(); } catch (e) { say(e.message); if (e.code === "central_unavailable") $("offline-details").hidden = false; }
    finally { for (const b of buttons) b.disabled = false; refreshStatus(); }
  };
}

function offlineDetails() {
  if ($("offline-details").hidden) return undefined;
  return { surname: $("off-surname").value, given_names: $("off-given").value, birth_date: $("off-birth").value, reason: $("off-reason").value };
}

$("signin-form").addEventListener("submit", action(async () => {
  const r = await api("POST", "/api/signin", { agent_id: $("agent-id").value, password: $("password").value });
  token = r.token; sessionStorage.setItem("dr-token", token);
  $("password").value = "";
  $("st-agent").textContent = r.name;
  await refreshStatus();
  await home();
}));
$("signout").addEventListener("click", action(async () => { await api("POST", "/api/signout"); signedOut(); }));
$("new-session").addEventListener("click", action(async () => { $("offline-details").hidden = true; render(await api("POST", "/api/sessions")); }));
$("prerequest-form").addEventListener("submit", action(async () => {
  render(await api("POST", "/api/sessions/" + current.id + "/prerequest", { number: $("prerequest-number").value, offline_details: offlineDetails() }));
}));
$("scan-qr").addEventListener("click", action(async () => {
  say("Présentez le QR code au lecteur…", "info");
  const view = await api("POST", "/api/sessions/" + current.id + "/prerequest", { from_scanner: true, timeout: 30, offline_details: offlineDetails() });
  say("");
  render(view);
}));
$("documents-form").addEventListener("submit", action(async () => {
  const checked = [...document.querySelectorAll("#documents-list input:checked")].map((c) => c.value);
  render(await api("POST", "/api/sessions/" + current.id + "/documents", { checked, stamp: $("stamp").value || null, erase_images: $("erase-images").checked }));
}));
$("capture").addEventListener("click", action(async () => {
  say("Capture en cours : posez le doigt sur le capteur…", "info");
  const view = await api("POST", "/api/sessions/" + current.id + "/capture");
  say("");
  render(view);
}));
$("exception-form").addEventListener("submit", action(async () => {
  render(await api("POST", "/api/sessions/" + current.id + "/exception", { code: $("exception-code").value }));
}));
$("confirm").addEventListener("click", action(async () => { render(await api("POST", "/api/sessions/" + current.id + "/confirm")); }));
$("redo").addEventListener("click", action(async () => { render(await api("POST", "/api/sessions/" + current.id + "/redo")); }));
$("abort").addEventListener("click", action(async () => { render(await api("POST", "/api/sessions/" + current.id + "/abort")); }));
$("back-home").addEventListener("click", action(home));
$("handover-form").addEventListener("submit", action(async () => {
  $("handover-result").textContent = "Posez un doigt enrôlé sur le capteur…";
  const r = await api("POST", "/api/handover", { request_number: $("handover-number").value });
  $("handover-result").textContent = r.message_fr;
}));

setInterval(refreshStatus, 3000);
if (token) { show("home"); refreshStatus(); home().catch(() => signedOut()); } else { show("signin"); }
