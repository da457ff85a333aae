// Shared by the console's management pages (queue, playlists, rules, schedule, cue points): the venue's
// API calls with the signed-in token, buttons that report their failures, and song forms.
"use strict";
window.consoleTools = (() => {
  const { venueId } = djamms.pageData();
  const venuePath = `/api/v1/venues/${encodeURIComponent(venueId)}`;

  // path: "/queue/full" (under this venue) or "/api/v1/..." (absolute). A token the hub refuses sends the
  // browser to sign in again (console.js).
  async function call(method, path, body) {
    try {
      return await djammsConsole.api(method, path.startsWith("/api/") ? path : venuePath + path, body);
    } catch (e) {
      if (e.status === 403) e.message = "You may not manage this venue: " + e.message;
      throw e;
    }
  }

  // A button whose action's errors show in the page's alert region; it is disabled while the action runs.
  function button(text, attrs, action) {
    const node = djamms.el("button", { type: "button", ...attrs }, text);
    node.addEventListener("click", async () => {
      node.disabled = true;
      djamms.clearMessages();
      try { await djamms.guard(action); } finally { node.disabled = false; }
    });
    return node;
  }

  // "3:45", "1:02:03" or seconds; null when empty or not a duration.
  function parseDuration(text) {
    const value = text.trim();
    if (!value) return null;
    if (/^\d+(\.\d+)?$/.test(value)) return Number(value);
    const parts = value.split(":");
    if (parts.length > 3 || parts.some((p) => !/^\d+$/.test(p))) return null;
    return parts.reduce((total, p) => total * 60 + Number(p), 0);
  }

  // The body for "a song by URL or id": {videoId} for a song the hub knows, else {song} with its details.
  function songBody(video, artist, title, duration) {
    if (!artist.trim() && !title.trim() && !duration.trim()) return { videoId: video.trim() };
    const seconds = parseDuration(duration);
    if (!artist.trim() || !title.trim() || seconds === null) {
      throw new Error("For a new song give artist, title and a duration such as 3:45.");
    }
    return { song: { videoId: video.trim(), artist: artist.trim(), title: title.trim(), duration: seconds } };
  }

  // A song added by URL alone is "pending" until the venue's box fetched it and said what it is: shown by its id.
  const PENDING = "details coming from the box";
  const songTitle = (song) => (song.detailsPending ? song.videoId : song.title);
  const songName = (song) => (song.detailsPending ? `${song.videoId} (${PENDING})` : `${song.title} by ${song.artist}`);

  function songLine(song) {
    const { el } = djamms;
    if (song.detailsPending) {
      return el("span", { class: "grow" }, el("span", { class: "title" }, song.videoId), el("br"),
        el("span", { class: "badge" }, PENDING));
    }
    const sub = [song.artist, song.duration ? djamms.duration(song.duration) : null,
      song.detailsFrom === "box" ? "from the box" : null].filter(Boolean).join(" · ");
    return el("span", { class: "grow" }, el("span", { class: "title" }, song.title),
      el("br"), el("span", { class: "sub" }, sub));
  }

  function form(id, action) {
    document.getElementById(id).addEventListener("submit", (event) => {
      event.preventDefault();
      djamms.clearMessages();
      djamms.guard(() => action(event.target));
    });
  }

  const value = (id) => document.getElementById(id).value;

  return { venueId, call, button, parseDuration, songBody, songLine, songName, songTitle, form, value };
})();
