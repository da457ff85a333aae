// The console's team page: who runs this venue; the hub's admin adds people by email and removes them.
"use strict";
(() => {
  const { venueId, call, button, form, value } = consoleTools;
  const { el } = djamms;
  const $ = (id) => document.getElementById(id);

  function person(user, admin, me) {
    const you = user.userId === me ? " (you)" : "";
    const actions = admin && user.userId !== me ? [
      button("Sign out everywhere", { "aria-label": `Sign ${user.email} out everywhere` }, async () => {
        await call("POST", `/api/v1/users/${encodeURIComponent(user.userId)}/sign-out`);
        djamms.showNotice(`${user.email} is signed out on every device.`);
      }),
      button("Remove", { class: "danger", "aria-label": `Remove ${user.email}` }, async () => {
        if (!confirm(`Remove ${user.email}? They can no longer sign in to this console.`)) return;
        await call("DELETE", `/api/v1/users/${encodeURIComponent(user.userId)}`);
        djamms.showNotice(`${user.email} is removed.`);
        await load();
      }),
    ] : [];
    const who = el("span", { class: "grow" }, el("span", { class: "title" }, user.email + you), el("br"),
      el("span", { class: "sub" }, user.role));
    return el("li", { class: "item" }, who, ...(actions.length ? [el("span", { class: "row" }, ...actions)] : []));
  }

  let me = null;

  async function load() {
    me = me || await call("GET", "/api/v1/me");
    const admin = me.role === "admin";
    $("add-card").hidden = !admin;
    $("staff-note").hidden = admin;
    const { users } = await call("GET", `/api/v1/users?venueId=${encodeURIComponent(venueId)}`);
    $("people").replaceChildren(...(users.length ? users.map((u) => person(u, admin, me.subject))
      : [el("li", { class: "muted" }, "Nobody yet: add the venue's first person above.")]));
  }

  form("person-form", async (node) => {
    const saved = await call("PUT", "/api/v1/users", { email: value("person-email").trim(), role: "staff", venueId });
    node.reset();
    djamms.showNotice(`${saved.email} is on the team. They sign in with that address.`);
    await load();
  });

  djamms.guard(load);
})();
