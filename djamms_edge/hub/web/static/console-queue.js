// The console's queue page: skip now, play next, remove (a paid request is refunded), reorder the rotation.
"use strict";
(() => {
  const { call, button, songBody, songLine, songName, songTitle, form, value } = consoleTools;
  const { el } = djamms;
  let focusAfter = null; // [entryId, action]: keep the keyboard where it was after a re-render

  function actions(entry, index, count) {
    const who = songName(entry);
    const buttons = [];
    if (entry.queue === "main") {
      buttons.push(button("↑", { "aria-label": `Move ${who} up`, dataset: { entry: entry.entryId, action: "up" },
        disabled: index === 0 }, () => move(entry, index, "up")));
      buttons.push(button("↓", { "aria-label": `Move ${who} down`, dataset: { entry: entry.entryId, action: "down" },
        disabled: index === count - 1 }, () => move(entry, index + 2, "down")));
    }
    const paid = entry.isRequest;
    buttons.push(button(paid ? "Remove & refund" : "Remove", { class: "danger", "aria-label": `Remove ${who}`,
      dataset: { entry: entry.entryId, action: "remove" } }, () => remove(entry)));
    return el("span", { class: "row" }, buttons);
  }

  function item(entry, index, count) {
    const badge = entry.queue === "main" ? null
      : el("span", { class: entry.isRequest ? "badge accent" : "badge" }, entry.isRequest ? "paid" : "staff pick");
    return el("li", { class: "item", dataset: { entry: entry.entryId } }, el("span", { class: "pos" }, String(index + 1)),
      songLine(entry), badge, actions(entry, index, count));
  }

  function fill(id, entries, empty) {
    const list = document.getElementById(id);
    list.replaceChildren(...(entries.length ? entries.map((e, i) => item(e, i, entries.length))
      : [el("li", { class: "muted" }, empty)]));
  }

  async function load() {
    const queue = await call("GET", "/queue/full");
    const np = document.getElementById("np");
    const playing = queue.nowPlaying;
    np.textContent = !playing ? "Nothing is playing." : playing.detailsPending ? songName(playing)
      : `${playing.title} — ${playing.artist}`;
    np.classList.toggle("muted", !playing);
    document.getElementById("skip").disabled = !playing;
    fill("priority", queue.priorityQueue, "No requests waiting.");
    fill("main-queue", queue.mainQueue, "The rotation is empty: activate a playlist.");
    if (focusAfter) {
      const [entryId, action] = focusAfter;
      focusAfter = null;
      const target = document.querySelector(`button[data-entry="${CSS.escape(entryId)}"][data-action="${action}"]:not(:disabled)`);
      if (target) target.focus();
    }
  }

  async function move(entry, position, direction) {
    focusAfter = [entry.entryId, direction];
    await call("PATCH", `/queue/entries/${encodeURIComponent(entry.entryId)}`, { position });
    djamms.showNotice(`Moved “${songTitle(entry)}”.`);
    await load();
  }

  async function remove(entry) {
    const answer = await call("DELETE", `/queue/entries/${encodeURIComponent(entry.entryId)}`);
    djamms.showNotice(answer.refund ? `Removed “${songTitle(entry)}”; its payment is marked for refund.`
      : `Removed “${songTitle(entry)}”.`);
    await load();
  }

  document.getElementById("skip").addEventListener("click", () => djamms.guard(async () => {
    djamms.clearMessages();
    await call("POST", "/skip", {});
    djamms.showNotice("Skipped: the box moves on within a second.");
    await load();
  }));

  form("next-form", async (node) => {
    const body = songBody(value("next-video"), value("next-artist"), value("next-title"), value("next-duration"));
    const entry = await call("POST", "/queue/next", body);
    djamms.showNotice(`“${entry.title}” plays next.`);
    node.reset();
    await load();
  });

  djamms.guard(load);
  setInterval(() => { if (!document.hidden) djamms.guard(load); }, 5000);
})();
