// The console's playlists page: create, rename, delete, mark requestable, activate; add, import, reorder
// and remove tracks.
"use strict";
(() => {
  const { call, button, parseDuration, songBody, songLine, songName, songTitle, form, value } = consoleTools;
  const { el } = djamms;
  let openId = null;
  let focusAfter = null;
  let editing = null; // "position:videoId" of the track whose details form is open

  async function load() {
    const { playlists } = await call("GET", "/playlists");
    const list = document.getElementById("playlists");
    list.replaceChildren(...(playlists.length ? playlists.map(summary)
      : [el("li", { class: "muted" }, "No playlists yet: create one above.")]));
    const open = playlists.find((p) => p.playlistId === openId);
    document.getElementById("editor").hidden = !open;
    if (open) edit(open);
  }

  function summary(p) {
    const badges = [p.active ? el("span", { class: "badge good" }, "playing") : null,
      p.requestable ? el("span", { class: "badge accent" }, "requestable") : null];
    return el("li", { class: "item", dataset: { playlist: p.playlistId } },
      el("span", { class: "grow" }, el("span", { class: "title" }, p.name), " ", badges, el("br"),
        el("span", { class: "sub" }, `${p.tracks.length} track${p.tracks.length === 1 ? "" : "s"}`)),
      button("Edit", { "aria-label": `Edit ${p.name}` }, async () => {
        openId = p.playlistId;
        editing = null;
        await load();
        document.getElementById("editor-heading").focus();
      }));
  }

  function edit(p) {
    document.getElementById("editor-heading").textContent = `Playlist: ${p.name}`;
    document.getElementById("editor-heading").setAttribute("tabindex", "-1");
    const name = document.getElementById("rename-name");
    if (document.activeElement !== name) name.value = p.name;
    document.getElementById("requestable").checked = p.requestable;
    document.getElementById("activate").disabled = p.active;
    document.getElementById("activate").textContent = p.active ? "Playing now" : "Play this playlist now";
    const tracks = document.getElementById("tracks");
    tracks.replaceChildren(...(p.tracks.length ? p.tracks.flatMap((t, i) => track(p, t, i))
      : [el("li", { class: "muted" }, "No tracks yet.")]));
    if (focusAfter === "edit-form") {
      focusAfter = null;
      document.getElementById("edit-artist").focus();
    }
    if (focusAfter) {
      const target = tracks.querySelector(`button[data-key="${focusAfter}"]:not(:disabled)`);
      focusAfter = null;
      if (target) target.focus();
    }
  }

  function track(p, t, i) {
    const position = i + 1;
    const path = `/playlists/${encodeURIComponent(p.playlistId)}/tracks/${position}`;
    const who = songName(t);
    const moveTo = (to, dir) => async () => {
      focusAfter = `${t.videoId}-${dir}`;
      await call("PATCH", path, { videoId: t.videoId, toPosition: to });
      await load();
    };
    const key = `${position}:${t.videoId}`;
    const item = el("li", { class: "item" }, el("span", { class: "pos" }, String(position)), songLine(t),
      el("span", { class: "row" },
        button("↑", { "aria-label": `Move ${who} up`, disabled: i === 0, dataset: { key: `${t.videoId}-up` } },
          moveTo(position - 1, "up")),
        button("↓", { "aria-label": `Move ${who} down`, disabled: position === p.tracks.length,
          dataset: { key: `${t.videoId}-down` } }, moveTo(position + 1, "down")),
        button("Edit", { "aria-label": `Edit details of ${who}`, "aria-expanded": String(editing === key),
          dataset: { key: `${t.videoId}-edit` } }, async () => {
          editing = editing === key ? null : key;
          focusAfter = editing ? "edit-form" : `${t.videoId}-edit`;
          await load();
        }),
        button("Remove", { class: "danger", "aria-label": `Remove ${who}` }, async () => {
          await call("DELETE", `${path}?videoId=${encodeURIComponent(t.videoId)}`);
          djamms.showNotice(`Removed “${songTitle(t)}”.`);
          await load();
        })));
    return editing === key ? [item, detailsForm(t, `${path}/details`)] : [item];
  }

  // Staff type (or correct) what the box filled in: theirs from then on.
  function detailsForm(t, path) {
    const input = (name, label, current, attrs = {}) => el("div", { class: "field" },
      el("label", { for: `edit-${name}` }, label),
      el("input", { id: `edit-${name}`, value: current, autocomplete: "off", ...attrs }));
    const node = el("form", { class: "stack", "aria-label": `Details of ${songName(t)}` },
      input("artist", "Artist", t.artist), input("title", "Title", t.title),
      input("duration", "Duration (m:ss)", t.duration ? djamms.duration(t.duration) : "", { placeholder: "3:45" }),
      el("span", { class: "row" }, el("button", { type: "submit", class: "primary" }, "Save details"),
        button("Cancel", {}, async () => {
          editing = null;
          await load();
        })));
    node.addEventListener("submit", (event) => {
      event.preventDefault();
      djamms.clearMessages();
      djamms.guard(async () => {
        const artist = value("edit-artist").trim(), title = value("edit-title").trim();
        const seconds = parseDuration(value("edit-duration"));
        if (!artist || !title || !seconds) throw new Error("Give artist, title and a duration such as 3:45.");
        await call("PUT", path, { videoId: t.videoId, artist, title, duration: seconds });
        editing = null;
        focusAfter = `${t.videoId}-edit`;
        djamms.showNotice(`Saved “${title}” by ${artist}.`);
        await load();
      });
    });
    return el("li", {}, node);
  }

  const open = () => `/playlists/${encodeURIComponent(openId)}`;

  form("create-form", async (node) => {
    const created = await call("POST", "/playlists", { name: value("create-name").trim() });
    openId = created.playlistId;
    node.reset();
    djamms.showNotice(`Created “${created.name}”: add songs below.`);
    await load();
  });

  form("rename-form", async () => {
    const p = await call("PATCH", open(), { name: value("rename-name") });
    djamms.showNotice(`Renamed to “${p.name}”.`);
    document.getElementById("rename-name").blur();
    await load();
  });

  document.getElementById("requestable").addEventListener("change", (event) => djamms.guard(async () => {
    const p = await call("PATCH", open(), { requestable: event.target.checked });
    djamms.showNotice(p.requestable ? "Patrons may request from this playlist." : "Not offered to patrons any more.");
    await load();
  }));

  document.getElementById("activate").addEventListener("click", () => djamms.guard(async () => {
    await call("PUT", "/active-playlist", { playlistId: openId });
    djamms.showNotice("Playing this playlist now: the boxes follow within a second.");
    await load();
  }));

  document.getElementById("delete").addEventListener("click", () => djamms.guard(async () => {
    await call("DELETE", open());
    openId = null;
    djamms.showNotice("Playlist deleted.");
    await load();
  }));

  form("add-form", async (node) => {
    const body = songBody(value("add-video"), value("add-artist"), value("add-title"), value("add-duration"));
    let added = body.song;
    if (body.song) {
      await call("POST", `${open()}/tracks`, body);
    } else {
      const answer = await call("POST", `${open()}/tracks/import`, { text: body.videoId });
      if (answer.problems.length) throw new Error(answer.problems[0].error);
      [added] = answer.added;
    }
    node.reset();
    djamms.showNotice(added.detailsPending ? "Song added: artist, title and length come from the box when it "
      + "fetches the song." : `Added “${added.title}”.`);
    await load();
  });

  form("import-form", async (node) => {
    const answer = await call("POST", `${open()}/tracks/import`, { text: value("import-text") });
    const problems = document.getElementById("import-problems");
    problems.replaceChildren(...answer.problems.map((p) => el("li", {}, `Line ${p.line} (${p.text}): ${p.error}`)));
    const pending = answer.added.filter((s) => s.detailsPending).length;
    djamms.showNotice(`Imported ${answer.added.length} song${answer.added.length === 1 ? "" : "s"}` +
      (pending ? ` (${pending} with details coming from the box)` : "") +
      (answer.problems.length ? `; ${answer.problems.length} line(s) not imported, listed below.` : "."));
    if (!answer.problems.length) node.reset();
    await load();
  });

  djamms.guard(load);
})();
