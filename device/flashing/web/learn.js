// MIDI learn on the status page: choose a knob, press Learn, turn a control on the controller.
// The flash service leaves the request for the control loop (POST api/learn); the loop says how it
// goes in its heartbeat (status.json "learn"), which status.js hands over with each poll
// ("dxmacro-status" event). Learning is a write: it needs the flash token, not the read token.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let shownKnobs = "";

  function knobOptions(knobs) {
    const key = JSON.stringify((knobs || []).map((k) => [k.index, k.name]));
    if (key === shownKnobs) return;  // rebuilt only when the knobs change: the choice stays put
    shownKnobs = key;
    const select = $("learn-knob");
    const chosen = select.value;
    select.replaceChildren();
    for (const k of knobs || []) {
      select.appendChild(new Option(`knob ${k.index + 1}${k.name ? " (" + k.name + ")" : ""}`, String(k.index)));
    }
    const n = (knobs || []).length;
    select.appendChild(new Option(`a new knob ${n + 1}`, String(n)));
    if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
  }

  function describe(learn) {
    if (!learn) return "control loop not running";
    if (!learn.available) return "no MIDI input to learn from ([midi] input in device.toml)";
    if (!learn.page) return "the loop follows no model store: hold panic and turn a control, or dxmacro device learn";
    const knob = learn.knob === undefined || learn.knob === null ? "" : `knob ${learn.knob + 1}: `;
    const last = learn.last ? ` (last: ${learn.last})` : "";
    switch (learn.state) {
      case "listening": return `${knob}turn a control on the controller…${last}`;
      case "bound": return `${knob}${learn.binding}, written to device.toml; applies ${learn.applies}`;
      case "failed": return `${knob}not learned: ${learn.reason}`;
      case "timed out": return `${knob}${learn.reason}`;
      case "cancelled": return "cancelled";
      default: return "";
    }
  }

  document.addEventListener("dxmacro-status", (ev) => {
    const loop = ev.detail && ev.detail.loop;
    const fresh = loop && loop.age_s <= 3;
    const learn = fresh ? loop.learn : null;
    knobOptions(fresh ? loop.knobs : []);
    $("learn").disabled = !(learn && learn.available && learn.page);
    $("learn-cancel").hidden = !(learn && learn.state === "listening");
    const state = $("learn-state");
    state.textContent = describe(learn);
    state.className = learn && learn.state === "bound" ? "ok" : learn && learn.state === "failed" ? "bad" : "muted";
  });

  async function send(body) {
    const token = sessionStorage.getItem("dxmacro-token") || "";
    try {
      const r = await fetch("api/learn", {
        method: "POST", cache: "no-store", body: JSON.stringify(body),
        headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" },
      });
      if (r.status === 401) {
        $("learn-state").textContent = "learning needs the flash token (this tab has the read token)";
      } else if (!r.ok) {
        const doc = await r.json().catch(() => ({}));
        $("learn-state").textContent = `refused: ${doc.error || "HTTP " + r.status}`;
      } else {
        $("learn-state").textContent = "asked the control loop…";
      }
    } catch (e) {
      $("learn-state").textContent = "(connection lost)";
    }
  }

  $("learn").addEventListener("click", () => send({ knob: Number($("learn-knob").value) }));
  $("learn-cancel").addEventListener("click", () => send({ cancel: true }));
})();
