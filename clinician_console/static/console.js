// vrex clinician console page. Plain JS; every request goes to the console's own REST API and WebSocket.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { me: null, csrf: "", snap: null, t0: 0, levels: [], envLevels: [], lastT: 0, lastWall: 0,
                rate: 1, ws: null, pendingStepUp: null, feedDropped: 0 };
const WINDOW_S = 180;  // the charts scroll over the last three minutes
const MAX_POINTS = 6000;

// -- API ------------------------------------------------------------------------------------------------
async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: "same-origin" };
  if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
  if (method !== "GET") opts.headers["X-CSRF-Token"] = state.csrf;
  const r = await fetch(path, opts);
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401 && path !== "/api/login") { showLogin(); }
  if (!r.ok) throw new Error((data && data.detail) || `${r.status} ${r.statusText}`);
  return data;
}

function mmss(s) {
  if (s === null || s === undefined || !isFinite(s)) return "";
  const neg = s < 0; s = Math.abs(Math.round(s));
  return (neg ? "-" : "") + Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// -- login ----------------------------------------------------------------------------------------------
async function showLogin() {
  $("login").hidden = false;
  try {
    const s = await (await fetch("/api/setup")).json();
    $("setup-box").hidden = !s.pending;
    $("login-button").textContent = s.pending ? "Create admin and log in" : "Log in";
  } catch (e) { /* offline: keep the plain form */ }
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").textContent = "";
  const username = $("login-user").value, password = $("login-pass").value;
  try {
    if (!$("setup-box").hidden) {
      await api("POST", "/api/setup", { token: $("setup-token").value.trim(), username, password });
    }
    const me = await api("POST", "/api/login", { username, password });
    $("login-pass").value = "";
    onLoggedIn(me);
  } catch (e) { $("login-error").textContent = e.message; }
});

$("logout").addEventListener("click", async () => {
  try { await api("POST", "/api/logout"); } catch (e) { /* already gone */ }
  location.reload();
});

function onLoggedIn(me) {
  state.me = me; state.csrf = me.csrf;
  $("login").hidden = true;
  $("who").textContent = `${me.username} (${me.role})`;
  const control = me.role !== "observer";
  document.querySelectorAll(".admin-only").forEach((e) => { e.hidden = me.role !== "admin"; });
  document.querySelectorAll(".therapist-only").forEach((e) => { e.hidden = !control; });
  document.querySelectorAll(".controls button, #stepup button, #stop").forEach((b) => { b.disabled = !control; });
  connect();
}

// -- tabs -----------------------------------------------------------------------------------------------
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => {
  document.querySelectorAll(".tab").forEach((x) => x.classList.toggle("active", x === b));
  document.querySelectorAll(".tab-page").forEach((p) => { p.hidden = p.id !== "tab-" + b.dataset.tab; });
  if (b.dataset.tab === "patients") loadPatients();
  if (b.dataset.tab === "audit") loadAudit();
  if (b.dataset.tab === "accounts") loadUsers();
}));

// -- charts ---------------------------------------------------------------------------------------------
function makeChart(el, title, series, yRange) {
  const opts = {
    title, width: el.clientWidth || 700, height: 165,
    scales: { x: { time: false }, y: yRange ? { range: yRange } : { auto: true } },
    axes: [{ values: (u, vals) => vals.map(mmss) }, { size: 50 }],
    series: [{ label: "time", value: (u, v) => mmss(v) }, ...series],
    legend: { show: false }, cursor: { drag: { x: false, y: false } },
  };
  return new uPlot(opts, [[], ...series.map(() => [])], el);
}

const charts = {};
const data = { hr: [[], [], [], []], rr: [[], []], rmssd: [[], []], arousal: [[], []] };
function initCharts() {
  if (charts.hr) return;
  charts.hr = makeChart($("c-hr"), "Heart rate (bpm) · dashed: baseline · dotted: baseline + 2 SD", [
    { label: "HR", stroke: "#c62828", width: 2 },
    { label: "baseline", stroke: "#667085", dash: [6, 4] },
    { label: "baseline + 2 SD", stroke: "#b26a00", dash: [2, 4] }]);
  charts.rr = makeChart($("c-rr"), "RR tachogram (ms)", [
    { label: "RR", stroke: "#2459c7", width: 1, points: { show: true, size: 3 } }]);
  charts.rmssd = makeChart($("c-rmssd"), "RMSSD (ms)", [{ label: "RMSSD", stroke: "#23803d", width: 2 }]);
  charts.arousal = makeChart($("c-arousal"), "Arousal (vs baseline)", [{ label: "arousal", stroke: "#7b3fb5", width: 2 }]);
  window.addEventListener("resize", fitCharts);
}

function fitCharts() {
  const w = $("c-hr").clientWidth;
  if (w > 0) for (const c of Object.values(charts)) c.setSize({ width: w, height: 165 });
}

function push(arrs, values) {
  values.forEach((v, i) => arrs[i].push(v));
  if (arrs[0].length > MAX_POINTS) arrs.forEach((a) => a.splice(0, arrs[0].length - MAX_POINTS));
}

let renders = 0;
function redraw() {  // ~5 times a second: the x axis scrolls with the session clock
  if (!charts.hr || !state.snap) return;
  const now = sessionNow();
  const x = { min: now - WINDOW_S, max: now + 2 };
  for (const [name, c] of Object.entries(charts)) {
    c.setData(data[name], false);
    c.setScale("x", x);
  }
  renders++;
  document.body.dataset.renders = String(renders);
  $("s-time").textContent = mmss(now) + " of " + mmss(state.snap.identity.total_s);
}
setInterval(redraw, 200);

function sessionNow() {  // seconds from the session's start, extrapolated between events
  const ended = state.snap && state.snap.status;
  const ahead = ended ? 0 : Math.min(1.5, (performance.now() - state.lastWall) / 1000 * state.rate);
  return state.lastT - state.t0 + Math.max(0, ahead);
}

// -- the live session -----------------------------------------------------------------------------------
function connect() {
  if (state.ws) return;
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${proto}//${location.host}/api/live/ws`);
  state.ws = ws;
  ws.binaryType = "blob";
  ws.onmessage = (m) => {
    if (m.data instanceof Blob) { showView(m.data); return; }
    const msg = JSON.parse(m.data);
    if (msg.type === "snapshot") { onSnapshot(msg.snapshot, msg.history || []); viewShared(msg.view); }
    else if (msg.type === "events") msg.items.forEach(onEvent);
    else if (msg.type === "idle") showIdle();
  };
  ws.onclose = () => { state.ws = null; setTimeout(() => { if (state.me) connect(); }, 1500); };
}

function showIdle() { $("no-session").hidden = false; $("live").hidden = true; }

function onSnapshot(snap, history) {
  initCharts();
  const sameSession = state.snap && state.snap.session_id === snap.session_id;
  state.snap = snap;
  state.t0 = snap.identity.t0_s;
  state.levels = snap.session_levels;
  state.envLevels = snap.identity.levels;
  state.lastT = snap.now_s; state.lastWall = performance.now();
  state.pendingStepUp = snap.pending_step_up || null;
  if (!sameSession) {
    for (const k of Object.keys(data)) data[k].forEach((a) => { a.length = 0; });
    $("timeline").innerHTML = "";
    history.forEach((e) => onEvent(e, true));
  }
  $("no-session").hidden = true; $("live").hidden = false;
  fitCharts();  // created while hidden: now the real width is known
  const jump = $("jump-level"); jump.innerHTML = "";
  for (const lv of state.levels) {
    const info = state.envLevels[lv] || { title: "" };
    const o = document.createElement("option"); o.value = lv; o.textContent = `${lv}: ${info.title}`;
    jump.appendChild(o);
  }
  syncJump();
  $("s-patient").textContent = `${snap.identity.patient} · ${snap.identity.environment_title}`;
  render();
}

const TIMELINE = {
  PhaseChanged: (e) => [`phase → ${e.phase}`, e.reason],
  LevelChanged: (e) => [`level ${e.previous ?? "–"} → ${e.level}`, `${levelTitle(e.level)} · ${e.cause}: ${e.reason}`],
  Recommendation: (e) => [`recommendation: ${e.action}`, `${e.reason} (level ${e.level})`, "rec"],
  SafetyAlert: (e) => [`ALERT ${e.code}`, `${e.message} (${e.action})`, "alert"],
  SudsPrompted: (e) => ["SUDS asked", `level ${e.level}${e.suds_kind ? " · " + e.suds_kind : ""}`],
  SudsRecorded: (e) => [`SUDS ${e.value}`, `level ${e.level} · ${e.source}`],
  SudsMissed: (e) => ["SUDS missed", `level ${e.level}`, "alert"],
  LevelSuds: (e) => [`SUDS at level ${e.level}`, `anticipated ${e.anticipated ?? "–"}, peak ${e.peak ?? "–"}, end ${e.end ?? "–"}`],
  StepUpOffered: (e) => [`step up offered → ${e.to_level}`, e.reason, "rec"],
  StepUpResolved: (e) => [`step up ${e.outcome}`, `${e.who}: ${e.reason}`, "rec"],
  NoteAdded: (e) => ["note", `${e.text} (${e.source})`],
  TherapistDecision: (e) => [`decision: ${e.decision}`, `${e.reason} (${e.source})`],
  BaselineMeasured: (e) => ["baseline", `HR ${e.hr_mean_bpm.toFixed(1)} ± ${e.hr_sd_bpm.toFixed(1)} bpm`],
  SensorEvent: (e) => [`sensor ${e.state}`, e.detail, e.state === "connected" ? "" : "alert"],
  SessionEnded: (e) => [`session ${e.status}`, e.reason, "alert"],
};

function syncJump() {  // the jump list starts at the present level: picking a target is a deliberate change
  const sel = $("jump-level");
  if (state.snap && state.snap.level !== null && document.activeElement !== sel) sel.value = String(state.snap.level);
}

function levelTitle(lv) { const i = state.envLevels[lv]; return i ? i.title : ""; }

function onEvent(e, fromHistory) {
  const snap = state.snap; if (!snap) return;
  if (e.kind === "Dropped") { state.feedDropped = e.total; return; }
  if (e.t_s > state.lastT) {
    if (e.kind === "HeartSampled" && !fromHistory && state.lastWall) {
      const dt = (performance.now() - state.lastWall) / 1000;
      if (dt > 0.05) state.rate = Math.max(0.1, Math.min(100, 0.7 * state.rate + 0.3 * (e.t_s - state.lastT) / dt));
    }
    state.lastT = e.t_s; state.lastWall = performance.now();
  }
  const t = e.t_s - state.t0;
  switch (e.kind) {
    case "HeartSampled": {
      const b = snap.baseline;
      push(data.hr, [t, e.hr_bpm, b ? b.hr_mean_bpm : null, b ? b.hr_mean_bpm + 2 * b.hr_sd_bpm : null]);
      push(data.rmssd, [t, e.rmssd_ms]); push(data.arousal, [t, e.arousal]);
      snap.heart = e; break;
    }
    case "BeatRecorded": if (!e.artifact) push(data.rr, [t, e.rr_ms]); break;
    case "PhaseChanged": snap.phase = e.phase; if (e.phase !== "exposure") state.pendingStepUp = null; break;
    case "LevelChanged": snap.level = e.level; snap.step = e.step; state.pendingStepUp = null; syncJump(); break;
    case "ExposureSampled": snap.shown = Object.assign(snap.shown || {}, { level: e.level, intensity: e.intensity, safe_place: e.safe_place }); break;
    case "BaselineMeasured": snap.baseline = e; break;
    case "SudsPrompted": snap.pending_suds = e; break;
    case "SudsRecorded": snap.last_suds = e; snap.pending_suds = null; break;
    case "SudsMissed": snap.pending_suds = null; break;
    case "LevelSuds": state.sudsStory = e; break;
    case "Recommendation": snap.last_recommendation = e; break;
    case "StepUpOffered": state.pendingStepUp = e; break;
    case "StepUpResolved": state.pendingStepUp = null; break;
    case "SensorEvent": if (e.state !== "payload_error") { snap.link_state = e.state; snap.link_detail = e.detail; } break;
    case "LoopLagged": snap.lag_s = e.lag_s; break;
    case "SessionEnded": snap.status = e.status; snap.end_reason = e.reason; snap.phase = "ended"; break;
  }
  if (e.kind === "Recommendation" && e.action === "hold") {  // a hold is listed when its cause changes
    if (state.lastHold === e.code) { if (!fromHistory) render(); return; }
    state.lastHold = e.code;
  } else if (e.kind === "Recommendation") state.lastHold = null;
  const line = TIMELINE[e.kind];
  if (line) addTimeline(t, ...line(e));
  if (!fromHistory) render();
}

function addTimeline(t, kind, text, cls) {
  const li = document.createElement("li");
  if (cls) li.className = cls;
  const a = document.createElement("span"); a.className = "t"; a.textContent = mmss(t);
  const b = document.createElement("span"); b.className = "k"; b.textContent = kind;
  const c = document.createElement("span"); c.textContent = text || "";
  li.append(a, b, c);
  const tl = $("timeline"); tl.prepend(li);
  while (tl.children.length > 400) tl.lastChild.remove();
}

function render() {
  const s = state.snap; if (!s) return;
  const ph = $("s-phase"); ph.textContent = s.phase.replace("_", " "); ph.className = "value phase-" + s.phase;
  const lv = s.level;
  $("s-level").textContent = lv === null || lv === undefined ? "–" : `${lv}: ${levelTitle(lv)}`;
  const info = state.envLevels[lv] || {};
  $("s-level-desc").textContent = info.description || "";
  const shown = s.shown || {};
  $("s-intensity").style.width = shown.safe_place ? "0%" : `${Math.round(100 * (shown.intensity || 0))}%`;
  const h = s.heart;
  $("s-hr").textContent = h && h.hr_bpm ? `${Math.round(h.hr_bpm)} bpm` : "–";
  $("s-quality").textContent = h ? `quality ${Math.round(100 * h.quality)} %${h.stale ? " · STALE" : ""}` : "";
  $("s-link").textContent = s.link_state === "unknown" ? (h && !h.stale ? "receiving" : "–") : s.link_state;
  $("s-suds").textContent = s.pending_suds ? "asked…" : s.last_suds ? String(s.last_suds.value) : "–";
  const st = state.sudsStory;
  $("s-suds-story").textContent = st ? `level ${st.level}: ant. ${st.anticipated ?? "–"} · peak ${st.peak ?? "–"} · end ${st.end ?? "–"}` : "";
  $("s-feed").textContent = [s.lag_s >= 1 ? `busy computer: ${s.lag_s.toFixed(1)} s behind` : "",
    state.feedDropped ? `${state.feedDropped} updates skipped (slow link)` : ""].filter(Boolean).join(" · ");
  const ended = !!s.status, exposure = s.phase === "exposure", control = state.me && state.me.role !== "observer";
  const idx = state.levels.indexOf(lv);
  $("pause").disabled = !control || !exposure;
  $("resume").disabled = !control || s.phase !== "safe_place";
  $("prev-level").disabled = !control || !exposure || idx <= 0;
  $("next-level").disabled = !control || !exposure || idx < 0 || idx >= state.levels.length - 1;
  $("jump").disabled = !control || !exposure;
  $("ask-suds").disabled = !control || !exposure;
  for (const id of ["enter-suds", "add-note", "end-session", "stop"]) $(id).disabled = !control || ended;
  const p = state.pendingStepUp;
  $("stepup").hidden = !p || ended;
  if (p) $("stepup-text").textContent = `Level ${p.from_level} → ${p.to_level} (${levelTitle(p.to_level)}): ${p.reason}`;
}

// -- the patient's view: JPEG images pushed on the WebSocket, a few a second ---------------------------
let viewUrl = null;
function showView(blob) {
  const url = URL.createObjectURL(blob);
  const img = $("view");
  img.onload = () => { if (viewUrl && viewUrl !== url) URL.revokeObjectURL(viewUrl); viewUrl = url; };
  img.src = url;
  viewShared(true);
}
function viewShared(on) { $("view").hidden = !on; $("view-none").hidden = !!on; }

// -- controls -------------------------------------------------------------------------------------------
function say(text, bad) { const m = $("control-msg"); m.textContent = text; m.className = "msg" + (bad ? " bad" : ""); }

async function send(action, body, done) {
  try {
    const r = await api("POST", `/api/live/${action}`, body || {});
    say(done || `${r.command} sent`);
  } catch (e) { say(e.message, true); }
}

function confirmDialog(title, text) {
  return new Promise((resolve) => {
    const d = $("confirm");
    $("confirm-title").textContent = title; $("confirm-text").textContent = text;
    d.returnValue = "cancel";
    d.onclose = () => resolve(d.returnValue === "ok");
    d.showModal();
    $("confirm-cancel").focus();  // Enter or a stray click does not confirm
  });
}

async function setLevel(level, jump) {
  const s = state.snap; const here = state.levels.indexOf(s.level), there = state.levels.indexOf(level);
  if (there > here) {
    const steps = there - here;
    const ok = await confirmDialog(`Raise exposure to level ${level}?`,
      `${levelTitle(level)}${steps > 1 ? ` — ${steps} steps above the present level ${s.level}` : ""}. ` +
      (state.envLevels[level] || {}).description);
    if (!ok) { say("not changed"); return; }
    return send("set_level", { level, confirm: true, jump: steps > 1 }, `raising to level ${level}`);
  }
  return send("set_level", { level }, `level ${level}`);
}

$("stop").addEventListener("click", () => send("safe_place", { reason: "the therapist pressed STOP" }, "STOP sent: safe place"));
$("pause").addEventListener("click", () => send("pause", {}, "paused"));
$("resume").addEventListener("click", async () => {
  if (await confirmDialog("Resume exposure?", "The patient leaves the safe place; exposure resumes one level below."))
    send("resume", { confirm: true }, "resuming");
});
$("prev-level").addEventListener("click", () => {
  const i = state.levels.indexOf(state.snap.level); if (i > 0) setLevel(state.levels[i - 1], false);
});
$("next-level").addEventListener("click", () => {
  const i = state.levels.indexOf(state.snap.level); if (i >= 0 && i < state.levels.length - 1) setLevel(state.levels[i + 1], false);
});
$("jump").addEventListener("click", () => setLevel(Number($("jump-level").value), true));
$("ask-suds").addEventListener("click", () => send("request_suds", {}, "SUDS asked"));
$("enter-suds").addEventListener("click", () => {
  const v = $("suds-value").value.trim();
  if (!/^\d+$/.test(v) || Number(v) > 100) { say("SUDS is a whole number from 0 to 100", true); return; }
  send("suds", { value: Number(v) }, `SUDS ${v} entered`);
  $("suds-value").value = "";
});
$("add-note").addEventListener("click", async () => {
  const text = $("note-text").value.trim(); if (!text) { say("write the note first", true); return; }
  try { await api("POST", "/api/live/note", { text }); $("note-text").value = ""; say("note saved"); }
  catch (e) { say(e.message, true); }
});
$("end-session").addEventListener("click", async () => {
  if (await confirmDialog("End the session now?", "The patient goes to the safe place and the record closes as stopped."))
    send("end", { confirm: true }, "ending the session");
});
$("stepup-accept").addEventListener("click", async () => {
  const p = state.pendingStepUp; if (!p) return;
  if (await confirmDialog(`Accept the step up to level ${p.to_level}?`, `${levelTitle(p.to_level)}. ${p.reason}`))
    send("accept_step_up", { confirm: true }, "step up accepted");
});
$("stepup-decline").addEventListener("click", () => send("decline_step_up", { reason: "declined by the therapist" }, "step up declined"));

// -- patients and past sessions -------------------------------------------------------------------------
function row(tbody, cells, onclick) {
  const tr = document.createElement("tr");
  for (const c of cells) { const td = document.createElement("td"); td.textContent = c ?? ""; tr.appendChild(td); }
  if (onclick) tr.addEventListener("click", onclick);
  tbody.appendChild(tr);
}

async function loadPatients() {
  const tb = $("patients").querySelector("tbody"); tb.innerHTML = "";
  try {
    const patients = await api("GET", "/api/patients");
    for (const p of patients) row(tb, [p.code, p.birth_year, p.sessions, p.notes], () => loadSessions(p.code));
    const sel = $("st-patient"); sel.innerHTML = "";
    for (const p of patients) { const o = document.createElement("option"); o.value = o.textContent = p.code; sel.appendChild(o); }
    const start = await api("GET", "/api/start-session");
    $("start-form").hidden = !start.can_start || state.me.role === "observer";
    $("start-msg").textContent = start.last_error ? `last start failed: ${start.last_error}` : "";
    loadSessions(null);
  } catch (e) { row(tb, [e.message]); }
}

$("start-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const sensor = $("st-sensor").value.trim() || "sim";
  try {
    await api("POST", "/api/start-session", { patient: $("st-patient").value, protocol: $("st-protocol").value.trim(),
      minutes: Number($("st-minutes").value), sensor, simulated_patient: $("st-simpatient").checked });
    $("start-msg").textContent = "starting: the live page connects when the heart signal is valid";
    document.querySelector('.tab[data-tab="live"]').click();
  } catch (e) { $("start-msg").textContent = e.message; }
});

async function loadSessions(code) {
  $("sessions-title").textContent = code ? `Sessions of ${code}` : "All sessions";
  const tb = $("sessions").querySelector("tbody"); tb.innerHTML = "";
  const rows = await api("GET", "/api/sessions" + (code ? `?patient=${encodeURIComponent(code)}` : ""));
  for (const s of rows.reverse()) row(tb, [s.started_utc.slice(0, 19), s.patient, s.protocol, s.status], () => showSession(s.id));
}

let sdChart = null;
async function showSession(id) {
  const d = await api("GET", `/api/sessions/${encodeURIComponent(id)}`);
  $("session-detail").hidden = false; $("session-detail").dataset.id = d.id;
  $("sd-title").textContent = `${d.patient || "-"} · ${d.protocol} · ${d.started_utc.slice(0, 16)}`;
  $("sd-summary").textContent = `${d.status}${d.end_reason ? ": " + d.end_reason : ""} · ${d.counts.hr_samples} HR samples · ${d.counts.suds} SUDS`;
  const hr = d.series.hr, lv = d.series.shown_level;
  const xs = Array.from(new Set([...hr.map((r) => r[0]), ...lv.map((r) => r[0]), ...d.suds.map((s) => s.t_s)])).sort((a, b) => a - b);
  const at = (pairs, col) => { const m = new Map(pairs.map((r) => [r[0], r[col]])); return xs.map((x) => m.has(x) ? m.get(x) : null); };
  const suds = new Map(d.suds.map((s) => [s.t_s, s.value]));
  const plotData = [xs, at(hr, 1), at(lv, 1), xs.map((x) => suds.has(x) ? suds.get(x) : null)];
  const el = $("sd-chart"); el.innerHTML = "";
  sdChart = new uPlot({
    width: el.clientWidth || 600, height: 260, scales: { x: { time: false }, lvl: { range: [0, 10] }, suds: { range: [0, 100] } },
    axes: [{ values: (u, v) => v.map(mmss) }, { label: "HR (bpm)" }, { scale: "lvl", side: 1, label: "level", grid: { show: false } }],
    series: [{ value: (u, v) => mmss(v) },
      { label: "HR", stroke: "#c62828", spanGaps: true },
      { label: "level", stroke: "#2459c7", scale: "lvl", spanGaps: true, width: 2 },
      { label: "SUDS", stroke: "#b26a00", scale: "suds", paths: () => null, points: { show: true, size: 9, fill: "#b26a00" } }],
  }, plotData, el);
  const ev = $("sd-events"); ev.innerHTML = "";
  const items = [...d.levels.map((l) => [l.t_s, `level ${l.level}`, `${l.cause}: ${l.reason}`]),
    ...d.suds.map((s) => [s.t_s, `SUDS ${s.value}`, `level ${s.level}`]),
    ...d.alerts.map((a) => [a.t_s, `ALERT ${a.code}`, a.message])].sort((a, b) => a[0] - b[0]);
  for (const [t, k, x] of items) { const li = document.createElement("li"); li.innerHTML = ""; li.append(span("t", mmss(t)), span("k", k), span("", x)); ev.appendChild(li); }
  const nl = $("sd-notes"); nl.innerHTML = "";
  for (const n of d.notes) { const li = document.createElement("li"); li.append(span("t", n.t_utc.slice(0, 16)), span("k", n.username), span("", n.text)); nl.appendChild(li); }
}
function span(cls, text) { const s = document.createElement("span"); s.className = cls; s.textContent = text; return s; }

$("patient-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const year = $("p-year").value ? Number($("p-year").value) : null;
  try { await api("POST", "/api/patients", { code: $("p-code").value.trim(), birth_year: year, notes: $("p-notes").value });
        $("p-code").value = ""; $("p-year").value = ""; $("p-notes").value = ""; loadPatients(); }
  catch (e) { alert(e.message); }
});
$("sd-note-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const id = $("session-detail").dataset.id;
  try { await api("POST", `/api/sessions/${encodeURIComponent(id)}/notes`, { text: $("sd-note").value }); $("sd-note").value = ""; showSession(id); }
  catch (e) { alert(e.message); }
});

// -- audit and accounts ---------------------------------------------------------------------------------
async function loadAudit() {
  const tb = $("audit").querySelector("tbody"); tb.innerHTML = "";
  for (const a of await api("GET", "/api/audit")) row(tb, [a.id, a.t_utc.slice(0, 19), a.username, a.role, a.action, a.outcome,
    a.event_kind ? `${a.event_kind} @ ${mmss(a.event_t_s - (state.t0 || 0))}` : "", a.latency_ms ? a.latency_ms.toFixed(1) : ""]);
}
$("audit-refresh").addEventListener("click", loadAudit);

async function loadUsers() {
  const tb = $("users").querySelector("tbody"); tb.innerHTML = "";
  for (const u of await api("GET", "/api/users")) row(tb, [u.username, u.role, u.created_utc.slice(0, 10), u.disabled ? "disabled" : ""]);
}
$("user-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try { await api("POST", "/api/users", { username: $("u-name").value.trim(), password: $("u-pass").value, role: $("u-role").value });
        $("u-name").value = ""; $("u-pass").value = ""; loadUsers(); }
  catch (e) { alert(e.message); }
});

// -- start ----------------------------------------------------------------------------------------------
(async () => {
  try { onLoggedIn(await api("GET", "/api/me")); } catch (e) { showLogin(); }
})();
