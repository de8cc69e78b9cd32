/* The monitoring notice (polydesk/web/privacy.py): shown over the page until the user dismisses
 * it; the daemon then remembers, for this user, that this version of it was read. */
(function () {
  const ok = document.getElementById("privacy-ok");
  if (!ok) return;
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  ok.addEventListener("click", () => {
    document.getElementById("privacy-notice").hidden = true;
    // If this fails (offline), the notice simply shows again next time: nothing else depends on it.
    fetch("/api/v1/privacy-notice/seen", {
      method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf },
    }).catch(() => {});
  });
})();
