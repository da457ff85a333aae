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

  // The price: the API takes it in the currency's smallest unit (cents; whole yen), the form in its own units.
  const zeroDecimal = new Set(djamms.pageData().zeroDecimal);
  const places = (currency) => (zeroDecimal.has(currency.toLowerCase()) ? 0 : 2);

  function showPrice(p) {
    const digits = places(p.currency);
    document.getElementById("price").step = String(10 ** -digits);
    document.getElementById("price").value = (p.price / 10 ** digits).toFixed(digits);
    document.getElementById("currency").value = p.currency.toUpperCase();
  }

  if (document.getElementById("price-form")) {
    // The suggested currencies carry their names in the reader's language ("CHF": Swiss Franc).
    if (typeof Intl.DisplayNames === "function") {
      const names = new Intl.DisplayNames([navigator.language], { type: "currency" });
      for (const option of document.querySelectorAll("#currency-options option")) {
        const name = names.of(option.value);
        if (name && name !== option.value) option.label = name;
      }
    }
    const currencyInput = document.getElementById("currency");
    currencyInput.addEventListener("change", () => {
      document.getElementById("price").step = String(10 ** -places(value("currency").trim()));
    });
    form("price-form", async () => {
      const currency = value("currency").trim().toLowerCase();
      const amount = Math.round(Number(value("price")) * 10 ** places(currency));
      currencyInput.removeAttribute("aria-invalid");
      try {
        showPrice(await call("PUT", "/price", { price: amount, currency }));
      } catch (e) {
        if (e.field === "currency") {  // the hub's word on the currency: mark the field and go back to it
          currencyInput.setAttribute("aria-invalid", "true");
          currencyInput.focus();
        }
        throw e;
      }
      djamms.showNotice("Price saved.");
    });
  }

  djamms.guard(async () => { show(await call("GET", "/rules")); });
})();
