// The console's rules page: explicit songs on or off, the venue's request limits and timezone, the ban
// list and explicit flags.
"use strict";
(() => {
  const { call, button, form, value } = consoleTools;
  const { el } = djamms;
  const LABELS = { ban_artist: "artist", ban_video: "video", explicit: "explicit" };

  function marks(id, rules, kinds, empty) {
    const found = rules.marks.filter((m) => kinds.includes(m.kind));
    document.getElementById(id).replaceChildren(...(found.length ? found.map((m) => el("li", {},
      el("span", { class: "badge" }, LABELS[m.kind]), el("span", { class: "grow title" }, m.value),
      button(m.kind === "explicit" ? "Unflag" : "Lift ban", { "aria-label": `Remove ${LABELS[m.kind]} ${m.value}` },
        async () => { show(await call("DELETE", `/marks/${encodeURIComponent(m.markId)}`), false); })))
      : [el("li", { class: "muted" }, empty)]));
  }

  function show(rules, fillForm = true) {
    if (fillForm) {
      document.getElementById("allow-explicit").checked = rules.allowExplicit;
      document.getElementById("max-duration").value = rules.maxDurationS ?? "";
      document.getElementById("artist-limit").value = rules.artistLimit ?? "";
      document.getElementById("timezone").value = rules.timezone;
    }
    marks("bans", rules, ["ban_artist", "ban_video"], "Nothing is banned.");
    marks("explicit", rules, ["explicit"], "No song is flagged explicit.");
  }

  const number = (id) => (value(id).trim() === "" ? null : Number(value(id)));

  form("settings-form", async () => {
    show(await call("PATCH", "/rules", {
      allowExplicit: document.getElementById("allow-explicit").checked,
      maxDurationS: number("max-duration"), artistLimit: number("artist-limit"), timezone: value("timezone").trim(),
    }));
    djamms.showNotice("Saved.");
  });

  form("ban-form", async (node) => {
    show(await call("POST", "/marks", { kind: value("ban-kind"), value: value("ban-value") }), false);
    node.reset();
    djamms.showNotice("Banned.");
  });

  form("explicit-form", async (node) => {
    show(await call("POST", "/marks", { kind: "explicit", value: value("explicit-value") }), false);
    node.reset();
    djamms.showNotice("Flagged explicit.");
  });

  // The price is the payments API's (issue 11), shown here beside the other request rules.
  function showPrice(p) {
    document.getElementById("price").value = (p.price / 100).toFixed(2);
    document.getElementById("currency").value = p.currency;
    document.getElementById("price-card").hidden = false;
  }

  async function price() {
    try {
      showPrice(await call("GET", "/price"));
    } catch (e) { /* a hub without payments: nothing to show */ }
  }

  form("price-form", async () => {
    const amount = Math.round(Number(value("price")) * 100);
    showPrice(await call("PUT", "/price", { price: amount, currency: value("currency").trim().toLowerCase() }));
    djamms.showNotice("Price saved.");
  });

  djamms.guard(async () => { show(await call("GET", "/rules")); });
  price();
})();
