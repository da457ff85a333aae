// The console's team page: who runs this venue. The hub's admin adds people (as staff or owners), changes
// their role and removes them; the venue's owners add and remove its staff; staff read the list. The hub
// checks every change (the page only offers what the signed-in role may do).
"use strict";
(() => {
  const { venueId, call, button, form, value } = consoleTools;
  const { el } = djamms;
  const $ = (id) => document.getElementById(id);
  const ROLE_NAMES = { owner: "Owner", staff: "Staff", admin: "Admin" };
  const ROLE_BADGE = { owner: "accent" };

  const usersPath = (user, tail = "") => `/api/v1/users/${encodeURIComponent(user.userId)}${tail}`;

  // What the signed-in person may do to ``user``: the admin anything but to themself; an owner, to staff.
  function actionsFor(user, myRole, me) {
    if (user.userId === me) return [];
    if (myRole === "owner" && user.role !== "staff") return [];
    if (myRole !== "owner" && myRole !== "admin") return [];
    const actions = [];
    if (myRole === "admin") {
      const next = user.role === "owner" ? "staff" : "owner";
      const label = next === "owner" ? "Make owner" : "Make staff";
      actions.push(button(label, { "aria-label": `${label}: ${user.email}` }, async () => {
        await call("PUT", "/api/v1/users", { email: user.email, role: next, venueId });
        djamms.showNotice(`${user.email} is ${next === "owner" ? "an owner" : "staff"} now.`);
        await load();
      }));
    }
    actions.push(
      button("Sign out everywhere", { "aria-label": `Sign ${user.email} out everywhere` }, async () => {
        await call("POST", usersPath(user, "/sign-out"));
        djamms.showNotice(`${user.email} is signed out on every device.`);
      }),
      button("Remove", { class: "danger", "aria-label": `Remove ${user.email}` }, async () => {
        if (!confirm(`Remove ${user.email}? They can no longer sign in to this console.`)) return;
        await call("DELETE", usersPath(user));
        djamms.showNotice(`${user.email} is removed.`);
        await load();
      }),
    );
    return actions;
  }

  function person(user, myRole, me) {
    const you = user.userId === me ? " (you)" : "";
    const who = el("span", { class: "grow" }, el("span", { class: "title" }, user.email + you), el("br"),
      el("span", { class: `badge ${ROLE_BADGE[user.role] || ""}` }, ROLE_NAMES[user.role] || user.role));
    const actions = actionsFor(user, myRole, me);
    return el("li", { class: "item" }, who, ...(actions.length ? [el("span", { class: "row" }, ...actions)] : []));
  }

  let me = null;

  async function load() {
    me = me || await call("GET", "/api/v1/me");
    const myRole = (me.user && me.user.role) || me.role;
    const manages = myRole === "admin" || myRole === "owner";
    $("add-card").hidden = !manages;
    $("role-field").hidden = myRole !== "admin";
    $("staff-note").hidden = manages;
    if (manages) $("person-hint").textContent = $("person-hint").dataset[myRole].replace(/\s+/g, " ");
    const { users } = await call("GET", `/api/v1/users?venueId=${encodeURIComponent(venueId)}`);
    $("people").replaceChildren(...(users.length ? users.map((u) => person(u, myRole, me.subject))
      : [el("li", { class: "muted" }, "Nobody yet: add the venue's first person above.")]));
  }

  form("person-form", async (node) => {
    const role = $("role-field").hidden ? "staff" : value("person-role");
    const saved = await call("PUT", "/api/v1/users", { email: value("person-email").trim(), role, venueId });
    node.reset();
    const as = saved.role === "owner" ? " as an owner" : "";
    const told = saved.invited ? "They were emailed where to sign in."
      : `Tell them to sign in at ${location.origin}/console/sign-in with that address.`;
    djamms.showNotice(`${saved.email} is on the team${as}. ${told}`);
    await load();
  });

  djamms.guard(load);
})();
