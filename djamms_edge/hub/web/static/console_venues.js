// The console's start: staff go straight to their venue's dashboard; admins pick one.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const { el } = djamms;

  async function load() {
    const me = await djammsConsole.api("GET", "/api/v1/me");
    $("who").textContent = `Signed in as ${me.email || me.subject} (${me.role})`;
    const { venues } = await djammsConsole.api("GET", "/api/v1/venues");
    if (me.role !== "admin" && venues.length === 1) {
      location.replace(`/console/${encodeURIComponent(venues[0].venueId)}/`);
      return;
    }
    $("venues").replaceChildren(...(venues.length ? venues.map((v) => el("li", {},
      el("span", { class: "grow" },
        el("a", { class: "title", href: `/console/${encodeURIComponent(v.venueId)}/` }, v.name),
        el("br"), el("span", { class: "sub" }, `${v.venueId} · ${v.timezone}`)))) : [el("li", { class: "muted" },
      me.role === "admin" ? "No venue yet: create the first one below."
        : "You have no venue yet. Ask the hub's admin to add you to one (on its Team page).")]));
    $("new-venue-card").hidden = me.role !== "admin";

    $("sign-out-everywhere").addEventListener("click", () => djamms.guard(async () => {
      await djammsConsole.api("POST", `/api/v1/users/${encodeURIComponent(me.subject)}/sign-out`);
      location.assign("/console/sign-in?signout=1");
    }));
  }

  // The id is the name as an address would have it, until the admin types one of their own.
  let idTyped = false;
  $("venue-id").addEventListener("input", () => { idTyped = true; });
  $("venue-name").addEventListener("input", () => {
    if (!idTyped) {
      $("venue-id").value = $("venue-name").value.normalize("NFKD").replace(/[\u0300-\u036f]/g, "").toLowerCase()
        .replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64);
    }
  });
  $("venue-form").addEventListener("submit", (event) => {
    event.preventDefault();
    djamms.clearMessages();
    djamms.guard(async () => {
      const venueId = $("venue-id").value.trim();
      const answer = await djammsConsole.api("POST", "/api/v1/venues",
        { venueId, name: $("venue-name").value.trim(), timezone: $("venue-timezone").value.trim() });
      if (!answer.created) throw new Error(`A venue with the id ${venueId} exists already: pick another id.`);
      location.assign(`/console/${encodeURIComponent(venueId)}/team`);
    });
  });

  djamms.guard(load);
})();
