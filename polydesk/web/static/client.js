/* Polydesk pages' one way to call the daemon's REST API (window.polydeskApi.call).
 *
 * Same origin, with the page's CSRF token. What a person reads is in the page's language: the
 * browser's own "Failed to fetch" is not (error.network is then true). A 401 (signed out, or the
 * sign-in ended because someone ended the session) goes back to the sign-in form. An answer
 * with per-session results is returned even when refused (403): each result says why. Any other
 * error answer throws the daemon's message (error.status is the HTTP status).
 */
(function () {
  "use strict";

  const { gettext, fill } = window.polydeskWords; // words.js runs first
  const csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function call(method, path, body) {
    let response;
    try {
      response = await fetch("/api/v1" + path, {
        method: method,
        credentials: "same-origin",
        headers: Object.assign(method === "GET" ? {} : { "X-CSRF-Token": csrf },
          body === undefined ? {} : { "Content-Type": "application/json" }),
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (e) {
      const error = new Error(gettext("The Polydesk service cannot be reached. Check the network connection and try again."));
      error.network = true;
      throw error;
    }
    if (response.status === 401) {
      window.location.assign("/signin");
      throw new Error(gettext("You are signed out."));
    }
    let data = null;
    try { data = response.status === 204 ? null : await response.json(); } catch (e) { data = null; }
    if (data && Array.isArray(data.results)) return data;
    if (!response.ok) {
      const error = new Error((data && data.error && data.error.message)
        || fill(gettext("The Polydesk service answered with an error ({status})."), { status: response.status }));
      error.status = response.status;
      throw error;
    }
    return data;
  }

  window.polydeskApi = Object.freeze({ call });
})();
