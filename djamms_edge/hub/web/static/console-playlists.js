// The console's playlists page: create, rename, delete, mark requestable, activate; add, import, reorder
// and remove tracks.
"use strict";
(() => {
  const { call, button, songBody, songLine, songName, songTitle, form, value } = consoleTools;
  const { el } = djamms;
  let openId = null;
  let focusAfter = null;

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
    tracks.replaceChildren(...(p.tracks.length ? p.tracks.map((t, i) => track(p, t, i))
      : [el("li", { class: "muted" }, "No tracks yet.")]));
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
    return el("li", { class: "item" }, el("span", { class: "pos" }, String(position)), songLine(t),
      el("span", { class: "row" },
        button("↑", { "aria-label": `Move ${who} up`, disabled: i === 0, dataset: { key: `${t.videoId}-up` } },
          moveTo(position - 1, "up")),
        button("↓", { "aria-label": `Move ${who} down`, disabled: position === p.tracks.length,
          dataset: { key: `${t.videoId}-down` } }, moveTo(position + 1, "down")),
        button("Remove", { class: "danger", "aria-label": `Remove ${who}` }, async () => {
          await call("DELETE", `${path}?videoId=${encodeURIComponent(t.videoId)}`);
          djamms.showNotice(`Removed “${songTitle(t)}”.`);
          await load();
        })));
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
