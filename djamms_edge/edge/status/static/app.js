// The status page: one EventSource for live snapshots, a local timer that moves
// the progress bar between them, and four control buttons. Text goes in through
// textContent only, so a song title can never become markup.
"use strict";

const $ = (id) => document.getElementById(id);
let current = null;      // the last snapshot received
let receivedAt = 0;      // performance.now() when it arrived (ms)

function clock(seconds) {
  const s = Math.max(0, Math.floor(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

function bytes(n) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

// "3 min", "2 h": how long a state has lasted, from the box's clock; "" under a minute.
function lasted(seconds) {
  if (seconds < 60) return "";
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min`;
  return `${Math.floor(seconds / 3600)} h`;
}

function badge(el, text, kind) {
  el.textContent = text;
  el.className = `badge ${kind}`;
}

function fillList(el, items, line) {
  el.replaceChildren(...items.map((item) => {
    const li = document.createElement("li");
    line(li, item);
    return li;
  }));
}

// The box's clock now: its time when the snapshot was sent plus the time since it
// reached this browser, so the phone's own clock never matters.
function boxNow() {
  return current.server_time + (performance.now() - receivedAt) / 1000;
}

function positionNow(np) {
  if (np.paused) return np.position;
  return Math.min(np.position + Math.max(0, boxNow() - np.position_at), np.real_end);
}

function showHub(hub) {
  if (!hub.configured) badge($("hub"), "no hub", "");
  else if (hub.refused) badge($("hub"), "hub refuses this box", "off");  // a token problem, not the network
  else if (hub.connected) badge($("hub"), "hub online", "on");
  else badge($("hub"), ["hub offline", lasted(boxNow() - hub.since)].filter(Boolean).join(" · "), "off");
}

function tick() {
  if (!current) return;
  showHub(current.hub);
  const np = current.now_playing;
  if (!np) return;
  const length = Math.max(0.001, np.real_end - np.real_start);
  const elapsed = Math.min(Math.max(0, positionNow(np) - np.real_start), length);
  const percent = (100 * elapsed) / length;
  $("progress").style.width = `${percent.toFixed(2)}%`;
  $("progress").parentElement.setAttribute("aria-valuenow", percent.toFixed(0));
  $("elapsed").textContent = clock(elapsed);
  $("length").textContent = clock(length);
}

function showPairing(pairing) {
  $("pairing").hidden = !pairing;
  if (!pairing) return;
  $("pairing-code").textContent = pairing.code;
  $("pairing-console").href = pairing.console_url;
  $("pairing-expires").textContent = new Date(pairing.expires_at * 1000).toLocaleTimeString();
}

function render(s) {
  current = s;
  receivedAt = performance.now();
  showPairing(s.pairing);
  $("venue").textContent = s.venue_id || "(not paired yet)";
  badge($("role"), s.role, s.role);
  $("hub").title = `${s.hub.detail || ""} since ${new Date(s.hub.since * 1000).toLocaleTimeString()}`;

  const np = s.now_playing;
  $("idle").hidden = Boolean(np);
  $("track").hidden = !np;
  if (np) {
    $("title").textContent = np.title;
    $("artist").textContent = np.artist;
    $("paused").hidden = !np.paused;
    $("pause").hidden = np.paused;
    $("resume").hidden = !np.paused;
  }
  tick();

  if (document.activeElement !== $("volume")) $("volume").value = s.volume;
  $("volume-value").textContent = Math.round(s.volume);

  const entry = (li, item) => {
    li.textContent = `${item.title} — ${item.artist} `;
    if (item.requested_by) {
      const who = document.createElement("small");
      who.textContent = `for ${item.requested_by}`;
      li.append(who);
    }
  };
  fillList($("priority"), s.priority_queue, entry);
  fillList($("main"), s.main_queue, entry);
  $("priority-count").textContent = `(${s.priority_queue.length})`;
  $("main-count").textContent = `(${s.main_queue.length})`;

  const c = s.cache;
  $("cache").textContent = c ? `${bytes(c.bytes_used)} of ${bytes(c.bytes_cap)}, ${c.files} files` : "not in use";
  const a = s.analysis;
  $("analysis").textContent = a ? `${a.done} / ${a.total}${a.running ? " (running)" : ""}` : "not in use";
  $("device").textContent = s.device_id;
  $("version").textContent = s.software_version;
  const problems = s.problems || [];
  $("problems-box").hidden = problems.length === 0;
  fillList($("problems"), problems, (li, problem) => { li.textContent = problem; });
  $("errors-total").textContent = `(${s.errors_total} since start)`;
  fillList($("errors"), s.recent_errors, (li, e) => {
    const at = document.createElement("time");
    at.textContent = `${new Date(e.at * 1000).toLocaleTimeString()} `;
    li.append(at, e.message);
  });
}

function connect() {
  const events = new EventSource("/events");
  events.addEventListener("status", (e) => render(JSON.parse(e.data)));
  events.addEventListener("open", () => badge($("live"), "live", "on"));
  // EventSource reconnects by itself (the server asks for 2 s); just say so.
  events.addEventListener("error", () => badge($("live"), "reconnecting", "off"));
}

async function control(action, body) {
  const out = $("control-result");
  const token = $("token").value.trim();
  if (!token) { out.textContent = "enter the admin token first"; return; }
  localStorage.setItem("djamms-admin-token", token);
  try {
    const response = await fetch(`/api/control/${action}`, {
      method: "POST",
      headers: { "Authorization": `Bearer ${token}`, "Content-Type": "application/json" },
      body: JSON.stringify(body || {}),
    });
    const answer = await response.json();
    out.textContent = response.ok ? `${action}: done` : `${action}: ${answer.error}`;
  } catch (err) {
    out.textContent = `${action}: the box did not answer (${err})`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token").value = localStorage.getItem("djamms-admin-token") || "";
  $("skip").addEventListener("click", () => control("skip"));
  $("pause").addEventListener("click", () => control("pause"));
  $("resume").addEventListener("click", () => control("resume"));
  $("volume").addEventListener("input", () => { $("volume-value").textContent = $("volume").value; });
  $("volume").addEventListener("change", () => control("volume", { volume: Number($("volume").value) }));
  setInterval(tick, 500);
  connect();
});
