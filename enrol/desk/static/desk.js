// cardbound desk: the only script of the app (served from the desk itself; CSP script-src 'self', no inline code).
"use strict";

const csrf = () => document.querySelector('meta[name="csrf"]').content;

async function postJson(url, body) {
  const r = await fetch(url, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf()}, body: JSON.stringify(body)});
  const data = await r.json().catch(() => ({}));
  if (!r.ok) { const e = new Error(data.message || r.statusText); e.data = data; throw e; }
  return data;
}

// ---- WebAuthn --------------------------------------------------------------------------------------------
async function login(ev) {
  ev.preventDefault();
  const status = document.getElementById("status");
  status.className = ""; status.textContent = status.dataset.touch;
  try {
    const options = await postJson("/api/login/begin", {operator: document.getElementById("operator").value});
    const cred = await navigator.credentials.get({publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options.publicKey)});
    const done = await postJson("/api/login/complete", cred.toJSON());
    window.location = done.next;
  } catch (e) {
    status.className = "bad"; status.textContent = (e.data && e.data.message) || status.dataset.failed;
  }
}

async function register() {
  const button = document.getElementById("register-button");
  const status = document.getElementById("status");
  status.className = ""; status.textContent = status.dataset.touch;
  try {
    const options = await postJson("/api/register/begin", {token: button.dataset.token});
    const cred = await navigator.credentials.create({publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options.publicKey)});
    const done = await postJson("/api/register/complete", cred.toJSON());
    status.className = "ok"; status.textContent = status.dataset.done;
    button.disabled = true;
    const a = document.createElement("a"); a.href = done.next; a.id = "to-login"; a.textContent = "→";
    status.appendChild(document.createTextNode(" ")); status.appendChild(a);
  } catch (e) {
    status.className = "bad"; status.textContent = (e.data && e.data.message) || status.dataset.failed;
  }
}

// ---- capture -------------------------------------------------------------------------------------------
const HINT_INTERVAL_MS = 250;  // a few frames a second; one request in flight at a time
let video, canvas, hintEl, takenEl, taking = false;

function frameBlob() {
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise(resolve => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

async function sendFrame(url) {
  const blob = await frameBlob();  // raw bytes in the body: never a multipart upload
  const r = await fetch(url, {method: "POST", credentials: "same-origin",
    headers: {"Content-Type": "image/jpeg", "X-CSRF-Token": csrf()}, body: blob});
  if (r.status === 401) { window.location = "/login?expired=idle"; throw new Error("logged out"); }
  return r.json();
}

function showHint(data) {
  hintEl.textContent = data.hints.join(" ");
  hintEl.dataset.codes = data.codes.join(",");
  hintEl.className = "hint " + (data.ok ? "ok" : "bad");
}

function showTaken(held, needed, label) {
  takenEl.dataset.held = held;
  takenEl.textContent = held >= needed ? label + " — " + takenEl.dataset.done : label;
  updateEnrolButton();
}

// Round trip of the last hints (frame encoded and sent -> hint on screen), kept for the desk's benchmark.
window.deskHintMs = [];
async function hintLoop() {
  if (!taking && video.readyState >= 2) {
    try {
      const t0 = performance.now();
      showHint(await sendFrame("/api/frame/hint"));
      window.deskHintMs.push(performance.now() - t0);
      if (window.deskHintMs.length > 500) window.deskHintMs.shift();
    } catch (e) { /* next round */ }
  }
  setTimeout(hintLoop, HINT_INTERVAL_MS);
}

async function take() {
  if (taking) return;
  taking = true;
  try {
    for (let i = 0; i < 30; i++) {
      const d = await sendFrame("/api/frame/take");
      showHint(d); showTaken(d.held, d.needed, d.label);
      if (d.held >= d.needed) break;
      await new Promise(r => setTimeout(r, 150));
    }
  } finally { taking = false; }
}

async function retake() {
  const d = await postJson("/api/frame/reset", {});
  showTaken(d.held, d.needed, d.label);
}

// ---- card panel ----------------------------------------------------------------------------------------
let lastReaders = "";
async function pollCard() {
  try {
    const r = await fetch("/api/card", {credentials: "same-origin"});
    if (r.ok) {
      const d = await r.json();
      const key = JSON.stringify(d);
      if (key !== lastReaders) {
        lastReaders = key;
        const ul = document.getElementById("readers"), sel = document.getElementById("reader");
        const chosen = sel.value;
        ul.textContent = ""; sel.textContent = "";
        for (const rd of d.readers) {
          const li = document.createElement("li");
          li.textContent = rd.name + " — " + rd.label; li.dataset.state = rd.state; ul.appendChild(li);
          const o = document.createElement("option"); o.value = rd.name; o.textContent = rd.name; sel.appendChild(o);
        }
        if (chosen) sel.value = chosen;
        if (!sel.value) { const present = d.readers.find(x => x.state !== "absent"); if (present) sel.value = present.name; }
        document.getElementById("reader-message").textContent = d.message;
        updateEnrolButton();
      }
    }
  } catch (e) { /* desk restarting */ }
  setTimeout(pollCard, 1500);
}

function updateEnrolButton() {
  const held = parseInt(takenEl.dataset.held, 10), needed = parseInt(takenEl.dataset.needed, 10);
  document.getElementById("enrol").disabled = !(held >= needed && document.getElementById("reader").value);
}

async function startDesk() {
  video = document.getElementById("video"); canvas = document.getElementById("canvas");
  hintEl = document.getElementById("hint"); takenEl = document.getElementById("taken");
  document.getElementById("take").addEventListener("click", take);
  document.getElementById("retake").addEventListener("click", retake);
  document.getElementById("enrol-form").addEventListener("submit", () => {
    document.getElementById("enrol").disabled = true;
    document.getElementById("progress").hidden = false;
  });
  pollCard();
  try {
    video.srcObject = await navigator.mediaDevices.getUserMedia({video: {width: 640, height: 480}, audio: false});
    hintLoop();
  } catch (e) {
    hintEl.className = "hint bad"; hintEl.textContent = hintEl.dataset.nocamera;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const page = document.body.dataset.page;
  if (page === "login") document.getElementById("login-form").addEventListener("submit", login);
  if (page === "register") document.getElementById("register-button").addEventListener("click", register);
  if (page === "desk") startDesk();
});
