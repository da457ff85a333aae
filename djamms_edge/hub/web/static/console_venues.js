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
      "You have no venue yet. An admin adds you to one (djamms-hub user set --email … --venue …).")]));

    $("sign-out-everywhere").addEventListener("click", () => djamms.guard(async () => {
      await djammsConsole.api("POST", `/api/v1/users/${encodeURIComponent(me.subject)}/sign-out`);
      location.assign("/console/sign-in?signout=1");
    }));
  }

  djamms.guard(load);
})();
