// What every console page shares (after djamms.js): API calls with the signed-in token, and the way
// back to the sign-in page when there is no token or the hub no longer accepts it (signed out
// everywhere, role or venue changed, removed).
"use strict";
window.djammsConsole = (() => {
  const SIGN_IN = "/console/sign-in";

  function signIn(reason) {
    djamms.setToken(null);
    location.assign(SIGN_IN + (reason ? "?reason=" + encodeURIComponent(reason) : ""));
  }

  // djamms.api with the method first; a 401 sends the browser to sign in again.
  async function api(method, path, body) {
    try {
      return await djamms.api(path, { method, body });
    } catch (e) {
      if (e.status === 401) signIn(e.message);
      throw e;
    }
  }

  if (!djamms.token()) signIn();
  return { api, signIn };
})();
