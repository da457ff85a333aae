// The sign-in page: mail a magic link (it points back here), or sign in with the one in the address.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const params = new URLSearchParams(location.search);
  const form = $("sign-in-form");

  if (params.has("signout")) {
    djamms.setToken(null);
    djamms.showNotice("You are signed out on this device.");
  } else if (params.has("reason")) {
    djamms.showError(params.get("reason"));
  }
  const secret = params.get("secret");
  // The one-time secret leaves the address bar and the history before anything else happens.
  if (params.toString()) history.replaceState(null, "", location.pathname);

  async function verify() {
    form.hidden = true;
    $("verifying").hidden = false;
    try {
      const answer = await djamms.api("/api/v1/auth/verify", { method: "POST", body: { secret } });
      djamms.setToken(answer.token);
      location.replace("/console/");
    } catch (e) {
      $("verifying").hidden = true;
      form.hidden = false;
      djamms.showError(e.status === 401 || e.status === 403
        ? "This sign-in link was used already or has expired. Ask for a new one below."
        : e.message);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    djamms.clearMessages();
    const email = $("email").value.trim();
    if (!email) {
      djamms.showError("Enter your email address.");
      $("email").focus();
      return;
    }
    djamms.guard(async () => {
      $("send-link").disabled = true;
      try {
        await djamms.api("/api/v1/auth/magic-link", {
          method: "POST", body: { email, redirectUrl: djamms.pageData().redirectUrl } });
        djamms.showNotice(`Check your mail: we sent a sign-in link to ${email}.`);
      } finally {
        $("send-link").disabled = false;
      }
    });
  });

  if (secret) verify();
  else if (djamms.token() && !params.has("signout") && !params.has("reason")) location.replace("/console/");
})();
