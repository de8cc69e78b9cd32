/* Polydesk pages' words, shared by their scripts (window.polydeskWords).
 *
 * The server puts the translation of every gettext call of the pages' scripts into the page
 * (#polydesk-strings, i18n.script_strings); English is the text itself. The labels of session
 * states and of per-session results are the same on the Dashboard and on the fleet page.
 */
(function () {
  "use strict";

  const STRINGS = JSON.parse((document.getElementById("polydesk-strings") || {}).textContent || "{}");
  const gettext = (text) => STRINGS[text] || text;
  const fill = (text, values) => text.replace(/\{(\w+)\}/g, (m, k) => (k in values ? String(values[k]) : m));

  window.polydeskWords = Object.freeze({
    gettext,
    fill,
    STATE_LABELS: Object.freeze({ active: gettext("Active"), disconnected: gettext("Disconnected"),
      "logging-off": gettext("Logging off") }),
    STATUS_LABELS: Object.freeze({
      ended: gettext("Logged off"), "logging-off": gettext("Logging off…"), disconnected: gettext("Disconnected"),
      blocked: gettext("Blocked"), unblocked: gettext("Unblocked"), shown: gettext("Message shown"),
      "web-limited": gettext("Web limited"), "web-unlimited": gettext("Web open"),
      "unknown-session": gettext("Unknown session"), "not-permitted": gettext("Not permitted"),
      failed: gettext("Failed"), projected: gettext("Projected"), "projection-stopped": gettext("Projection stopped"),
      "would-do": gettext("Would be done"),
    }),
  });
})();
