// The console's cue points page: each playlist song's measured start/end and the venue's own override.
"use strict";
(() => {
  const { venueId, call, button, songName, songTitle } = consoleTools;
  const { el } = djamms;
  const seconds = (v, none = "—") => (v === null || v === undefined ? none : `${Number(v).toFixed(1)} s`);
  let rows = [];

  function field(label, id, current) {
    return el("span", { class: "field grow" }, el("label", { for: id }, label),
      el("input", { id, type: "number", min: "0", step: "0.1", inputmode: "decimal", value: current ?? "" }));
  }

  function row(song, track, index) {
    const mine = track && track.venueOverride;
    const measured = track ? track.analysis : null;
    const startId = `start-${index}`, endId = `end-${index}`;
    const save = async (clear) => {
      const read = (id) => (clear || document.getElementById(id).value === "" ? null : Number(document.getElementById(id).value));
      const answer = await call("PUT", "/api/v1/catalog/override",
        { videoId: song.videoId, venueId, realStartOffset: read(startId), realEndOffset: read(endId) });
      djamms.showNotice(`${songTitle(song)}: plays from ${seconds(answer.realStartOffset, "the start")} to ${seconds(answer.realEndOffset, "the end")}.`);
      await load();
    };
    return el("li", { class: "cue", dataset: { video: song.videoId, search: `${song.title} ${song.artist} ${song.videoId}`.toLowerCase() } },
      el("div", {},
        el("p", { class: "title" }, song.detailsPending ? songName(song) : `${song.title} — ${song.artist}`),
        el("p", { class: "sub" }, measured && measured.deviceId
          ? `Measured: ${seconds(measured.realStartOffset)} to ${seconds(measured.realEndOffset)}`
          : "Not measured yet (a box measures a song when it first downloads it)."),
        el("p", { class: "sub" }, mine ? `This venue: from ${seconds(mine.realStartOffset, "the start")} to ${seconds(mine.realEndOffset, "the end")}`
          : "This venue: as measured"),
        el("div", { class: "row" }, field("Start (s)", startId, mine ? mine.realStartOffset : null),
          field("End (s)", endId, mine ? mine.realEndOffset : null)),
        el("div", { class: "row" },
          button("Save", { class: "primary", "aria-label": `Save cue points of ${songTitle(song)}` }, () => save(false)),
          mine ? button("Use measured", { "aria-label": `Clear this venue's cue points of ${songTitle(song)}` },
            () => save(true)) : null)));
  }

  function filter() {
    const text = document.getElementById("filter").value.trim().toLowerCase();
    for (const li of document.getElementById("cues").children) {
      li.hidden = Boolean(text) && !(li.dataset.search || "").includes(text);
    }
  }

  async function load() {
    const { playlists } = await call("GET", "/playlists");
    const songs = new Map();
    for (const p of playlists) for (const t of p.tracks) if (!songs.has(t.videoId) || songs.get(t.videoId).detailsPending) songs.set(t.videoId, t);
    rows = [...songs.values()].slice(0, 200);
    const query = rows.map((s) => `videoId=${encodeURIComponent(s.videoId)}`).join("&");
    const { tracks } = rows.length ? await call("GET", `/api/v1/catalog?${query}&venueId=${encodeURIComponent(venueId)}`)
      : { tracks: [] };
    const known = Object.fromEntries(tracks.map((t) => [t.videoId, t]));
    document.getElementById("cues").replaceChildren(...(rows.length ? rows.map((s, i) => row(s, known[s.videoId], i))
      : [el("li", { class: "muted" }, "No songs yet: add some to a playlist.")]));
    filter();
  }

  document.getElementById("filter").addEventListener("input", filter);
  djamms.guard(load);
})();
