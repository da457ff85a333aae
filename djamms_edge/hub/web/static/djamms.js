// The helper every hub page loads (before its own script): JSON calls with the saved token, messages
// in the layout's live regions, and small DOM/format helpers. No framework, no build step.
"use strict";
window.djamms = (() => {
  const TOKEN_KEY = "djamms.token";

  class ApiError extends Error {
    constructor(status, message, field) {
      super(message);
      this.status = status;
      this.field = field || null;
    }
  }

  function token() {
    try { return localStorage.getItem(TOKEN_KEY); } catch (e) { return null; }
  }

  function setToken(value) {
    try {
      if (value) localStorage.setItem(TOKEN_KEY, value); else localStorage.removeItem(TOKEN_KEY);
    } catch (e) { /* private mode: the page still works for this visit */ }
  }

  // fetch JSON from the hub; resolves to the parsed body, rejects with ApiError (status 0 = no network).
  async function api(path, options = {}) {
    const headers = { Accept: "application/json", ...(options.headers || {}) };
    const saved = token();
    if (saved && !headers.Authorization) headers.Authorization = "Bearer " + saved;
    const init = { method: options.method || "GET", headers, credentials: "same-origin" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "No connection to the server. Check the Wi-Fi and try again.");
    }
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!response.ok) {
      const message = (body && body.error) || `The server answered ${response.status}.`;
      throw new ApiError(response.status, message, body && body.field);
    }
    return body;
  }

  function show(id, message) {
    const box = document.getElementById(id);
    if (!box) return;
    box.textContent = message || "";
    box.hidden = !message;
  }

  const showError = (message) => show("alert", message);
  const showNotice = (message) => show("notice", message);
  function clearMessages() { show("alert", ""); show("notice", ""); }

  // Run an async action; a failure shows in the alert region instead of vanishing into the console.
  async function guard(action) {
    try {
      return await action();
    } catch (e) {
      showError(e && e.message ? e.message : String(e));
      return undefined;
    }
  }

  // Build an element: el("li", {class: "mine", dataset: {id: "x"}}, "text", child). Text is never HTML.
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // The page's server data: base.html renders context["page_data"] as a JSON block (never executed).
  function pageData() {
    const block = document.getElementById("page-data");
    return block ? JSON.parse(block.textContent) : {};
  }

  function clock(ms) {
    return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function duration(seconds) {
    const s = Math.max(0, Math.round(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  // "in 4 min" / "now" for an estimated start time (ms since the epoch).
  function fromNow(ms, now = Date.now()) {
    const minutes = Math.round((ms - now) / 60000);
    return minutes <= 0 ? "now" : `in ${minutes} min`;
  }

  return { ApiError, token, setToken, api, showError, showNotice, clearMessages, guard, el, pageData,
           clock, duration, fromNow };
})();
