// Status page: polls /api/status a few times a second; the upload form posts the bundle with the
// token in an Authorization header (XMLHttpRequest for its upload progress events).
// Reads need a token too: the user pastes it once; it is kept in this tab's sessionStorage (gone
// when the tab closes, never sent to another site) and sent as "Authorization: Bearer" on each poll.
"use strict";

const TOKEN_KEY = "dxmacro-token";

const $ = (id) => document.getElementById(id);
const text = (id, value) => { $(id).textContent = value === undefined || value === null ? "–" : String(value); };

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c); else td.textContent = c;
    tr.appendChild(td);
  }
  return tr;
}

function bar(value) {
  const outer = document.createElement("span");
  outer.className = "bar";
  const inner = document.createElement("span");
  inner.style.width = `${Math.max(0, Math.min(1, value)) * 100}%`;
  outer.appendChild(inner);
  return outer;
}

function renderKnobs(knobs) {
  const body = $("knobs").tBodies[0];
  body.replaceChildren();
  if (!knobs || !knobs.length) {
    body.appendChild(row(["no heartbeat from the control loop"]));
    return;
  }
  for (const k of knobs) {
    const tr = row([`${k.index}`, k.name || "", bar(k.value), Number(k.value).toFixed(3)]);
    tr.dataset.knob = k.index;
    tr.cells[3].className = "knob-value";
    body.appendChild(tr);
  }
}

function render(s) {
  const active = s.store.active;
  text("model-name", active ? active.model_id : "no model installed");
  text("model-version", active ? `version ${active.version}` : "");
  text("model-file", active ? active.name : null);
  const loop = s.loop;
  const stale = !loop || loop.age_s > 3;
  text("loop-model", loop && loop.model ? `${loop.model.id || ""} ${loop.model.version || ""} (${loop.model.file || "?"})` : "control loop not running");
  $("loop-model").className = loop && !stale && loop.healthy ? "ok" : "bad";
  const h = s.health || {};
  text("health", h.state === "idle" ? (loop && !stale ? (loop.healthy ? "healthy" : "UNHEALTHY") : "no heartbeat")
    : `${h.state}${h.model ? " " + h.model : ""}${h.reason ? ": " + h.reason : ""}`);
  renderKnobs(loop && !stale ? loop.knobs : null);
  text("anchor", loop && loop.anchor ? `${loop.anchor.name}${loop.anchor.index !== undefined ? " (#" + loop.anchor.index + ")" : ""}` : null);
  text("midi-port", loop && loop.midi ? loop.midi.port : null);
  text("midi-state", loop && loop.midi ? `(${loop.midi.state})` : "");
  $("midi-state").className = loop && loop.midi && loop.midi.state === "connected" ? "ok" : "bad";
  text("loop-age", loop ? `${Number(loop.age_s).toFixed(1)} s ago` : "never");

  const errs = [...((loop && loop.errors) || []).map((e) => ({ ...e, level: "error", from: "loop" })),
                ...(s.events || []).map((e) => ({ ...e, from: "flash" }))]
    .sort((a, b) => (b.time || 0) - (a.time || 0)).slice(0, 12);
  const ul = $("errors");
  ul.replaceChildren();
  for (const e of errs) {
    const li = document.createElement("li");
    li.className = e.level;
    li.textContent = `${new Date((e.time || 0) * 1000).toLocaleTimeString()} [${e.from}] ${e.message}`;
    ul.appendChild(li);
  }
  if (!errs.length) ul.appendChild(Object.assign(document.createElement("li"), { textContent: "none", className: "muted" }));

  const mb = $("models").tBodies[0];
  mb.replaceChildren();
  for (const m of s.store.models) {
    mb.appendChild(row([m.active ? "▶" : "", m.model_id, m.version, m.name]));
  }
}

function askForToken(why) {
  text("conn", why);
  $("access-form").hidden = false;
}

async function poll() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) {
    askForToken("(token needed)");
  } else {
    try {
      const r = await fetch("api/status", { cache: "no-store", headers: { Authorization: `Bearer ${token}` } });
      if (r.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        askForToken("(wrong token)");
      } else {
        const doc = await r.json();
        render(doc);
        document.dispatchEvent(new CustomEvent("dxmacro-status", { detail: doc }));  // learn.js
        text("conn", "");
        $("access-form").hidden = true;
      }
    } catch (e) {
      text("conn", "(connection lost)");
    }
  }
  setTimeout(poll, 300);
}

$("access-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("access-token").value.trim());
  $("access-token").value = "";
  text("conn", "connecting…");
});

$("upload-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const file = $("file").files[0];
  if (!file) return;
  const q = new URLSearchParams({ filename: file.name, wait: "1", force: $("force").checked ? "1" : "0" });
  const xhr = new XMLHttpRequest();
  const progress = $("progress");
  progress.hidden = false;
  progress.value = 0;
  $("upload").disabled = true;
  text("upload-result", "uploading…");
  xhr.upload.onprogress = (e) => { if (e.lengthComputable) progress.value = e.loaded / e.total; };
  xhr.onloadend = () => {
    $("upload").disabled = false;
    let doc = {};
    try { doc = JSON.parse(xhr.responseText); } catch (e) { doc = { error: `HTTP ${xhr.status}` }; }
    const res = $("upload-result");
    if (doc.ok) {
      const h = typeof doc.health === "object" ? doc.health.state : doc.health;
      const st = doc.self_test || {};
      res.className = "ok";
      res.textContent = `installed ${doc.installed}; active ${doc.active}; health ${h}; self-test ` +
        Object.entries(st).map(([k, v]) => `${k}=${v}`).join(" ");
    } else {
      res.className = "bad";
      res.textContent = `refused: ${doc.error || "HTTP " + xhr.status}`;
    }
  };
  xhr.open("POST", `api/upload?${q}`);
  xhr.setRequestHeader("Authorization", `Bearer ${$("token").value}`);
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.send(file);
});

poll();
