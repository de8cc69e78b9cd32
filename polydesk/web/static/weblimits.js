/* Polydesk Dashboard: the "Limit web access" dialog and the saved lists of sites.
 *
 * Opened from whatever carries data-web-limit: the thumbnails' right-click menu (the toolbar
 * has no room left for it in Portuguese on a laptop); it acts on the selected sessions or all.
 *
 * Beside dashboard.js (window.polydeskDashboard: the selection, the results panel). The limit
 * itself is the daemon's (POST /api/v1/sessions/web-limit, /off; saved lists in /web-lists),
 * held by the kernel; this page only says what the teacher wants. Sites and list names come
 * from people: they go into the page with textContent only.
 */
(function () {
  "use strict";

  const dash = window.polydeskDashboard;
  const grid = document.getElementById("grid");
  const dialog = document.getElementById("web-dialog");
  if (!dash || !grid || !dialog || grid.dataset.mode !== "dashboard") return;
  const $ = (id) => document.getElementById(id);
  const { gettext, fill } = window.polydeskWords; // words.js

  let sites = [];
  let lists = [];
  let chosenIds = [];
  let opener = null;

  const call = window.polydeskApi.call; // client.js

  function error(text) {
    $("web-error").textContent = text;
    $("web-error").hidden = !text;
  }

  const mode = () => dialog.querySelector('input[name="web-mode"]:checked').value;
  function setMode(value) {
    for (const input of dialog.querySelectorAll('input[name="web-mode"]')) input.checked = input.value === value;
  }

  function renderSites() {
    $("web-sites").replaceChildren(...sites.map((site) => {
      const li = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = site;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = gettext("Remove");
      remove.setAttribute("aria-label", fill(gettext("Remove {site}"), { site }));
      remove.addEventListener("click", () => { sites = sites.filter((s) => s !== site); renderSites(); });
      li.append(name, " ", remove);
      return li;
    }));
  }

  function renderLists() {
    const select = $("web-list");
    while (select.options.length > 1) select.remove(1);
    for (const list of lists) {
      const option = document.createElement("option");
      option.value = list.name;
      option.textContent = fill(gettext("{name} ({mode}: {count} sites)"), {
        name: list.name, count: list.sites.length,
        mode: list.mode === "allow" ? gettext("allow only") : gettext("block only") });
      select.appendChild(option);
    }
    $("web-list-delete").hidden = select.value === "";
  }

  // What a teacher types, in the one form the daemon keeps (core/websites.py): the browser's URL
  // parser drops a scheme, user, port and path, lowers the case and writes other scripts in IDNA.
  function canonical(text) {
    const typed = text.trim().replace(/^\*\./, "");
    try {
      const url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(typed) ? typed : "http://" + typed);
      return url.hostname.replace(/\.$/, "") || typed;
    } catch (e) {
      return typed; // the daemon's answer says what is wrong with it
    }
  }

  function addSite() {
    const input = $("web-site");
    for (const typed of input.value.split(/[\s,]+/)) {
      const site = typed && canonical(typed);
      if (site && !sites.includes(site)) sites.push(site);
    }
    input.value = "";
    renderSites();
    input.focus();
  }

  async function open() {
    const ids = [...dash.selected];
    chosenIds = ids;
    const users = ids.map((id) => (dash.cardOf(id) || { dataset: {} }).dataset.user).filter(Boolean);
    $("web-targets").textContent = ids.length
      ? fill(gettext("The selected sessions: {users}"), { users: users.join(", ") })
      : gettext("The selected sessions: none");
    const scope = dialog.querySelector('input[name="web-scope"][value="selected"]');
    scope.disabled = ids.length === 0;
    dialog.querySelector(`input[name="web-scope"][value="${ids.length ? "selected" : "all"}"]`).checked = true;
    sites = [];
    setMode("allow");
    error("");
    opener = document.activeElement;
    try {
      if (ids.length === 1) {  // one session: its limit, to change it
        const session = await call("GET", "/sessions/" + encodeURIComponent(ids[0]));
        if (session && session.web_limit) { sites = [...session.web_limit.sites]; setMode(session.web_limit.mode); }
      }
      lists = await call("GET", "/web-lists");
    } catch (e) {
      error(e.message);
    }
    renderSites();
    renderLists();
    dialog.showModal();
    $("web-site").focus();
  }

  async function apply(path, body) {
    const title = path === "web-limit" ? gettext("Limit web access") : gettext("Remove the web limit");
    try {
      const all = dialog.querySelector('input[name="web-scope"]:checked').value === "all";
      const targets = all ? { all: true } : { ids: chosenIds };
      const result = await call("POST", "/sessions/" + path, Object.assign({}, targets, body));
      dialog.close();
      dash.showResults(fill(gettext("{action}: {done} done, {failed} failed"),
        { action: title, done: result.succeeded, failed: result.failed }), result.results);
    } catch (e) {
      error(e.message);
    }
  }

  $("web-add").addEventListener("click", addSite);
  $("web-site").addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); addSite(); }
  });
  $("web-list").addEventListener("change", () => {
    const list = lists.find((l) => l.name === $("web-list").value);
    $("web-list-delete").hidden = !list;
    if (!list) return;
    sites = [...list.sites];
    setMode(list.mode);
    $("web-list-name").value = list.name;
    renderSites();
  });
  $("web-list-save").addEventListener("click", async () => {
    const name = $("web-list-name").value.trim();
    if (!name) { error(gettext("Give the list a name first.")); return; }
    try {
      await call("PUT", "/web-lists/" + encodeURIComponent(name), { mode: mode(), sites });
      lists = await call("GET", "/web-lists");
      renderLists();
      $("web-list").value = name;
      $("web-list-delete").hidden = false;
      error("");
    } catch (e) {
      error(e.message);
    }
  });
  $("web-list-delete").addEventListener("click", async () => {
    const name = $("web-list").value;
    if (!name) return;
    try {
      await call("DELETE", "/web-lists/" + encodeURIComponent(name));
      lists = await call("GET", "/web-lists");
      renderLists();
    } catch (e) {
      error(e.message);
    }
  });
  $("web-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if ($("web-site").value.trim()) addSite();
    apply("web-limit", { mode: mode(), sites });
  });
  $("web-off").addEventListener("click", () => apply("web-limit/off", {}));
  $("web-cancel").addEventListener("click", () => dialog.close());
  dialog.addEventListener("close", () => {
    if (opener && document.contains(opener)) opener.focus();
    opener = null;
  });
  document.addEventListener("click", (event) => {
    if (event.target.closest("[data-web-limit]")) {
      event.stopPropagation();
      const menu = document.getElementById("context-menu");
      if (menu) menu.hidden = true;
      open();
    }
  });
})();
