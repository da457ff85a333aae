// The patron page: live queue and the patron's own request (server-sent events), search, request and pay.
"use strict";
(() => {
  const { api, el, showError, showNotice, clearMessages, clock, duration, fromNow } = window.djamms;
  const data = djamms.pageData();
  const venue = encodeURIComponent(data.venueId);
  const $ = (id) => document.getElementById(id);
  const MINE_KEY = "djamms.request." + data.venueId;
  let nowPlaying = data.nowPlaying;
  let queue = [];
  let chosen = null;
  let stream = null;
  let closed = !$("closed").hidden;  // paid requests closed: nothing plays at the venue (the hub says so live)

  function patronId() {
    let id = null;
    try { id = localStorage.getItem("djamms.patron"); } catch (e) { /* private mode */ }
    if (!id) {
      const bytes = crypto.getRandomValues(new Uint8Array(12));
      id = "p-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
      try { localStorage.setItem("djamms.patron", id); } catch (e) { /* this visit only */ }
    }
    return id;
  }

  function myRequest() {
    const fromUrl = new URLSearchParams(location.search).get("request");
    if (fromUrl) { try { localStorage.setItem(MINE_KEY, fromUrl); } catch (e) { /* ok */ } return fromUrl; }
    try { return localStorage.getItem(MINE_KEY); } catch (e) { return null; }
  }

  // --- now playing and the queue --------------------------------------------------------------
  // A song staff added by URL alone has no title until the venue's box described it.
  const UNNAMED = "A song from the venue's playlist";
  const titleOf = (entry) => entry.title || UNNAMED;

  function showNowPlaying() {
    $("np-title").textContent = nowPlaying ? titleOf(nowPlaying) : "Nothing is playing right now.";
    $("np-artist").textContent = nowPlaying ? nowPlaying.artist : "";
    tick();
  }

  function tick() {
    const bar = $("np-progress");
    if (!nowPlaying) { bar.value = 0; $("np-left").textContent = ""; return; }
    const total = nowPlaying.playDuration || 0;
    const elapsed = Math.min(total, Math.max(0, (Date.now() - nowPlaying.startedAt) / 1000));
    bar.value = total > 0 ? elapsed / total : 0;
    $("np-left").textContent = `${duration(elapsed)} / ${duration(total)}`;
  }

  function showQueue(entries) {
    queue = entries;
    const list = $("queue");
    list.replaceChildren(...(entries.length ? entries.map((e) => el("li", { class: e.mine ? "mine" : null },
      el("span", { class: "pos" }, String(e.position)),
      el("span", { class: "grow" }, el("span", { class: "title" }, titleOf(e)), el("br"),
        el("span", { class: "sub" }, [e.artist, clock(e.estimatedStartAt)].filter(Boolean).join(" · "))),
      e.mine ? el("span", { class: "badge good" }, "yours") : null,
    )) : [el("li", { class: "muted" }, "The queue is empty.")]));
  }

  // When a new paid request would start: after the last paid request queued, else after the current song.
  function wouldStartAt() {
    const paid = queue.filter((e) => e.queue === "priority");
    if (paid.length) { const last = paid[paid.length - 1]; return last.estimatedStartAt + last.playDuration * 1000; }
    return nowPlaying ? Math.max(Date.now(), nowPlaying.estimatedEndAt) : Date.now();
  }

  // --- the patron's own request -----------------------------------------------------------------
  const WORDS = {
    awaiting_payment: () => "Waiting for the payment to be confirmed…",
    pending: (r) => r.position
      ? `In the queue: number ${r.position}, plays at about ${clock(r.estimatedStartAt)} (${fromNow(r.estimatedStartAt)}).`
      : "In the queue.",
    played: () => "Played. Thank you!",
    refund_due: (r) => `Not played: ${r.reason || "it was refused"}. Your payment will be refunded.`,
    refunded: (r) => `Not played: ${r.reason || "it was refused"}. Your payment was refunded.`,
    refund_failed: (r) => `Not played: ${r.reason || "it was refused"}. The refund is being retried; staff can help.`,
  };

  function showMine(request) {
    const box = $("mine");
    if (!request) { box.hidden = true; return; }
    box.hidden = false;
    $("mine-song").textContent = `${request.song.title} — ${request.song.artist}`;
    const words = request.playing ? () => "Playing now!" : (WORDS[request.status] || (() => request.status));
    $("mine-status").textContent = words(request);
    box.dataset.status = request.playing ? "playing" : request.status;
    if (request.status === "played" || request.status === "refunded") {
      try { localStorage.removeItem(MINE_KEY); } catch (e) { /* ok */ }
    }
  }

  // --- requests open and closed as the venue's box starts and stops ---------------------------------
  function showClosed(nowClosed) {
    if (nowClosed === closed) return;
    closed = nowClosed;
    $("closed").hidden = !closed;
    $("reopened").hidden = closed;  // said once it changes, in the live region: a screen reader hears it
    for (const button of document.querySelectorAll("button.choose")) button.disabled = closed;
    $("confirm-pay").disabled = closed;
  }

  function listen(requestId) {
    if (stream) stream.close();
    const query = requestId ? "?request=" + encodeURIComponent(requestId) : "";
    stream = new EventSource(`/api/v1/venues/${venue}/live${query}`);
    stream.addEventListener("state", (event) => {
      const state = JSON.parse(event.data);
      nowPlaying = state.queue.nowPlaying;
      showNowPlaying();
      showQueue(state.queue.queue);
      showMine(state.request);
      showClosed(Boolean(state.requestsClosed));
      if (state.request && (state.request.status === "played" || state.request.status === "refunded")) {
        listen(null); // the hub ended that stream; keep the queue live
      }
    });
  }

  // --- songs: search, choose, pay ----------------------------------------------------------------
  function songRow(song) {
    return el("li", {},
      el("span", { class: "grow" }, el("span", { class: "title" }, song.title), el("br"),
        el("span", { class: "sub" }, `${song.artist} · ${duration(song.playDuration)}`)),
      el("button", { type: "button", class: "primary choose", "aria-label": `Request ${song.title} by ${song.artist}`,
        disabled: closed, dataset: { videoId: song.videoId, title: song.title, artist: song.artist,
          seconds: song.playDuration } },
      "Request"));
  }

  let searchTimer = 0;
  function search() {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => djamms.guard(async () => {
      const q = $("search").value.trim();
      const found = await api(`/api/v1/venues/${venue}/songs?limit=50&q=${encodeURIComponent(q)}`);
      $("songs").replaceChildren(...(found.songs.length ? found.songs.map(songRow)
        : [el("li", { class: "muted" }, "No songs match.")]));
    }), 250);
  }

  function choose(button) {
    clearMessages();
    chosen = { videoId: button.dataset.videoId, title: button.dataset.title, artist: button.dataset.artist,
               seconds: Number(button.dataset.seconds) };
    $("confirm-song").textContent = `${chosen.title} — ${chosen.artist}`;
    const at = wouldStartAt();
    const cost = data.price > 0 ? `Price: ${data.priceText}. ` : "Free. ";
    $("confirm-details").textContent =
      `${cost}Length ${duration(chosen.seconds)}. Would play at about ${clock(at)} (${fromNow(at)}).`;
    $("confirm-pay").textContent = data.price > 0 ? `Pay ${data.priceText}` : "Request it";
    $("confirm").hidden = false;
    $("confirm-pay").focus();
  }

  async function pay() {
    if (!chosen || closed) return;
    const button = $("confirm-pay");
    button.disabled = true;
    try {
      const started = await api(`/api/v1/venues/${venue}/checkout`, { method: "POST",
        body: { song: { videoId: chosen.videoId }, requesterId: patronId() } });
      try { localStorage.setItem(MINE_KEY, started.requestId); } catch (e) { /* ok */ }
      if (started.checkoutUrl) { location.assign(started.checkoutUrl); return; }
      $("confirm").hidden = true;
      showNotice("Your song is in the queue.");
      listen(started.requestId);
    } catch (e) {
      showError(e.status === 422 || e.status === 429 ? `Not requested: ${e.message}` : e.message);
    } finally {
      button.disabled = closed;
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.choose");
    if (button) choose(button);
  });
  $("search").addEventListener("input", search);
  $("confirm-pay").addEventListener("click", pay);
  $("confirm-cancel").addEventListener("click", () => { $("confirm").hidden = true; chosen = null; });
  if (new URLSearchParams(location.search).get("cancelled")) {
    showNotice("Payment cancelled: nothing was charged.");
    try { localStorage.removeItem(MINE_KEY); } catch (e) { /* ok */ }
  }
  showNowPlaying();
  setInterval(tick, 1000);
  listen(myRequest());
})();
