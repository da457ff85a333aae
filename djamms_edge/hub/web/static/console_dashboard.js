// The venue dashboard: each box, today's requests and refunds, recent device errors; pair and revoke
// boxes. Refreshed every few seconds; the progress bars move on between refreshes.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const { el } = djamms;
  const venueId = djamms.pageData().venueId;
  const base = `/api/v1/venues/${encodeURIComponent(venueId)}`;
  const REFRESH_MS = 5000;
  const ROLE_BADGE = { master: "good", standby: "accent", offline: "", revoked: "bad" };
  let board = null;
  let receivedAt = 0;

  function ago(ms) {
    if (!ms) return "never";
    const seconds = Math.max(0, Math.round((board.now - ms) / 1000));
    if (seconds < 90) return `${seconds} s ago`;
    if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
    return `${Math.round(seconds / 3600)} h ago`;
  }

  function playing(box) {
    const np = box.nowPlaying;
    if (!np) return el("p", { class: "sub" }, box.role === "master" ? "Nothing playing" : "");
    const bar = el("progress", { max: np.duration || 1, value: np.position || 0, "aria-label": "Progress",
                                 dataset: { position: np.position || 0, duration: np.duration || 0 } });
    return el("div", { class: "now-playing" },
      el("p", {}, "Playing ", el("b", {}, np.title || np.videoId || "?"), np.artist ? ` — ${np.artist}` : ""),
      bar, el("p", { class: "sub num", dataset: { clock: "1" } }, ""));
  }

  function boxItem(box) {
    const facts = [`last heartbeat ${ago(box.lastHeartbeat)}`];
    if (box.epoch !== null) facts.push(`epoch ${box.epoch}`);
    facts.push(`version ${box.version || "unknown"}`);
    const problems = box.problems.length ? el("ul", { class: "problems" },
      box.problems.map((p) => el("li", {}, p))) : null;
    const revoke = box.revoked ? null : el("button", {
      type: "button", class: "danger", onclick: () => revokeBox(box.deviceId),
      "aria-label": `Revoke box ${box.deviceId}` }, "Revoke");
    return el("li", { class: "box", dataset: { device: box.deviceId, role: box.role } },
      el("div", { class: "grow stack" },
        el("p", { class: "row" }, el("span", { class: "title" }, box.deviceId),
          el("span", { class: `badge ${ROLE_BADGE[box.role] || ""}` }, box.role)),
        playing(box),
        el("p", { class: "sub" }, facts.join(" · ")),
        problems),
      revoke);
  }

  function tick() {
    if (!board) return;
    const since = (performance.now() - receivedAt) / 1000;
    for (const bar of document.querySelectorAll("#boxes progress")) {
      const duration = Number(bar.dataset.duration);
      const position = Math.min(Number(bar.dataset.position) + since, duration || Infinity);
      bar.value = position;
      const label = bar.parentElement.querySelector("[data-clock]");
      if (label) label.textContent = `${djamms.duration(position)} / ${duration ? djamms.duration(duration) : "?"}`;
    }
  }

  function render(data) {
    board = data;
    receivedAt = performance.now();
    $("boxes").replaceChildren(...(data.boxes.length ? data.boxes.map(boxItem)
      : [el("li", { class: "muted" }, "No box has reported yet. Pair one below.")]));
    const today = data.today;
    $("today-requests").textContent = today.requests;
    $("today-refunds").textContent = today.refunds;
    $("today-statuses").textContent = Object.entries(today.byStatus).map(([s, n]) => `${n} ${s}`).join(", ");
    $("requests").tBodies[0].replaceChildren(...(today.recent.length ? today.recent.map((r) => el("tr", {},
      el("td", { class: "nowrap num" }, djamms.clock(r.timestamp)),
      el("td", {}, `${r.song.title} — ${r.song.artist}`),
      el("td", {}, r.status))) : [el("tr", {}, el("td", { colspan: 3, class: "muted" }, "No requests today."))]));
    $("device-errors").replaceChildren(...(data.deviceErrors.length ? data.deviceErrors.map((e) => el("li", {},
      el("span", { class: "grow" }, el("span", { class: "title" }, e.message), el("br"),
        el("span", { class: "sub" }, `${e.deviceId} · ${djamms.clock(e.at)}`)))) : [el("li", { class: "muted" },
      "No problems reported.")]));
    $("updated").textContent = `Updated ${djamms.clock(data.now)}`;
    tick();
  }

  async function refresh() {
    render(await djammsConsole.api("GET", `${base}/dashboard`));
  }

  async function revokeBox(deviceId) {
    if (!confirm(`Revoke box ${deviceId}? It stops playing at once and must be paired again.`)) return;
    await djamms.guard(async () => {
      await djammsConsole.api("POST", `${base}/devices/${encodeURIComponent(deviceId)}/revoke`);
      djamms.showNotice(`Box ${deviceId} is revoked.`);
      await refresh();
    });
  }

  $("pair-form").addEventListener("submit", (event) => {
    event.preventDefault();
    djamms.clearMessages();
    const code = $("pair-code").value.trim();
    if (!code) {
      djamms.showError("Type the code the box shows.");
      $("pair-code").focus();
      return;
    }
    djamms.guard(async () => {
      const paired = await djammsConsole.api("POST", `${base}/pairings`, { code });
      $("pair-code").value = "";
      djamms.showNotice(`Box ${paired.deviceId} is paired. It starts playing in a few seconds.`);
      await refresh();
    });
  });

  djamms.guard(refresh);
  setInterval(() => djamms.guard(refresh), REFRESH_MS);
  setInterval(tick, 1000);
})();
