// The console's schedule page: weekly windows in venue time, each playing one playlist.
"use strict";
(() => {
  const { call, button, form, value } = consoleTools;
  const { el } = djamms;
  const DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];
  const hhmm = (minutes) => `${String(Math.floor(minutes / 60)).padStart(2, "0")}:${String(minutes % 60).padStart(2, "0")}`;

  async function load() {
    const [schedule, { playlists }] = await Promise.all([call("GET", "/schedule"), call("GET", "/playlists")]);
    document.getElementById("tz").textContent = schedule.timezone;
    const names = Object.fromEntries(playlists.map((p) => [p.playlistId, p.name]));
    const select = document.getElementById("slot-playlist");
    const chosen = select.value;
    select.replaceChildren(...playlists.map((p) => el("option", { value: p.playlistId }, p.name)));
    if (chosen) select.value = chosen;
    document.getElementById("slots").replaceChildren(...(schedule.slots.length ? schedule.slots.map((s) => {
      const when = `${DAYS[s.weekday]} ${hhmm(s.startMinute)}–${hhmm(s.endMinute)}`;
      return el("li", { class: "item" }, el("span", { class: "grow" }, el("span", { class: "title" }, when), el("br"),
        el("span", { class: "sub" }, names[s.playlistId] || s.playlistId)),
        s.slotId === schedule.appliedSlotId ? el("span", { class: "badge good" }, "now") : null,
        button("Remove", { class: "danger", "aria-label": `Remove ${when}` }, async () => {
          await call("DELETE", `/schedule/${encodeURIComponent(s.slotId)}`);
          djamms.showNotice(`Removed ${when}.`);
          await load();
        }));
    }) : [el("li", { class: "muted" }, "No windows: the playlist staff choose plays all week.")]));
  }

  form("slot-form", async () => {
    const end = value("slot-end") === "00:00" ? "24:00" : value("slot-end");
    await call("POST", "/schedule", { playlistId: value("slot-playlist"), weekday: Number(value("slot-day")),
      start: value("slot-start"), end });
    djamms.showNotice("Window added.");
    await load();
  });

  djamms.guard(load);
  setInterval(() => { if (!document.hidden) djamms.guard(load); }, 15000);
})();
