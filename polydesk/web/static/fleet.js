/* Polydesk fleet page: every host's sessions, grouped and filtered by host (MultiPoint's Systems).
 *
 * The list comes from /api/v1/fleet/sessions every two seconds (a read of the daemon's memory);
 * actions go through the same POST /api/v1/sessions/<action> as the Dashboard, with host/id ids
 * or {"all": true, "fleet": true | "host": name}. Thumbnails are asked of their host only while
 * this page is visible, with ETags: an unchanged picture costs a 304. No inline script (the CSP
 * forbids it); anything that came from a user is put in the page with textContent.
 */
(function () {
  "use strict";

  const root = document.getElementById("fleet");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const { gettext, fill, STATE_LABELS, STATUS_LABELS } = window.polydeskWords; // words.js
  const showPrivileged = root.dataset.privileged === "true";
  const REFRESH_MS = 2000;
  const THUMB_MS = 3000;

  const selected = new Set();
  let sessions = [];
  let hosts = [];

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const api = window.polydeskApi.call; // client.js

  function notice(text) {
    $("notice").textContent = text;
    $("notice").hidden = !text;
  }

  // ---------------------------------------------------------------- the list

  function shown(s) {
    const host = $("host-filter").value;
    const search = $("search").value.trim().toLowerCase();
    return (showPrivileged || s.role === "standard" || s.own) && (!host || s.fleet_host === host) &&
      (!search || s.user.toLowerCase().includes(search));
  }

  function renderHosts() {
    const list = $("hosts");
    list.replaceChildren(...hosts.map((h) => {
      const item = el("li", h.online ? "online" : "offline");
      const count = h.sessions === 1 ? gettext("1 session") : fill(gettext("{n} sessions"), { n: h.sessions });
      item.append(el("span", "dot"), el("span", "name", h.name), el("span", "count", " · " + count +
        (h.online ? "" : " · " + gettext("offline"))));
      item.dataset.host = h.name;
      return item;
    }));
    const filter = $("host-filter");
    const current = filter.value;
    const options = [filter.options[0]];
    for (const h of hosts) {
      const option = el("option", "", h.name + (h.online ? "" : " (" + gettext("offline") + ")"));
      option.value = h.name;
      options.push(option);
    }
    filter.replaceChildren(...options);
    filter.value = hosts.some((h) => h.name === current) ? current : "";
  }

  function card(s) {
    const node = el("div", "card");
    node.id = "card-" + s.id;
    node.dataset.id = s.id;
    node.setAttribute("role", "option");
    node.tabIndex = 0;
    const screen = el("div", "screen");
    const img = el("img", "thumb");
    img.alt = "";
    img.width = 160;
    img.height = 100;
    img.addEventListener("load", () => { img.dataset.loading = ""; });
    img.addEventListener("error", () => { img.dataset.loading = ""; });
    screen.append(img);
    const footer = el("footer");
    footer.append(el("span", "user"), el("span", "state"));
    node.append(screen, footer);
    node.addEventListener("click", () => toggle(s.id));
    node.addEventListener("keydown", (event) => {
      if (event.key === " " || event.key === "Enter") { event.preventDefault(); toggle(node.dataset.id); }
    });
    return node;
  }

  function update(node, s) {
    node.querySelector(".user").textContent = s.user;
    node.querySelector(".state").textContent = (STATE_LABELS[s.state] || s.state) +
      (s.blocked ? " · " + gettext("Blocked") : "");
    node.className = "card state-" + s.state + (s.blocked ? " is-blocked" : "") +
      (selected.has(s.id) ? " selected" : "");
    node.setAttribute("aria-selected", selected.has(s.id) ? "true" : "false");
    node.dataset.online = s.host_online ? "1" : "";
    node.title = s.id;
  }

  function render() {
    const groups = $("groups");
    const byHost = new Map(hosts.map((h) => [h.name, []]));
    for (const s of sessions.filter(shown)) {
      if (!byHost.has(s.fleet_host)) byHost.set(s.fleet_host, []);
      byHost.get(s.fleet_host).push(s);
    }
    const wanted = [];
    for (const [name, list] of byHost) {
      if (!list.length) continue;
      const id = "host-" + name;
      let section = document.getElementById(id);
      if (!section) {
        section = el("section", "host-group");
        section.id = id;
        const title = el("h2");
        title.append(el("span", "host-name", name), el("span", "host-state"));
        const grid = el("div", "grid");
        grid.setAttribute("role", "listbox");
        grid.setAttribute("aria-multiselectable", "true");
        grid.setAttribute("aria-label", name);
        section.append(title, grid);
      }
      const host = hosts.find((h) => h.name === name);
      const online = !host || host.online;
      section.classList.toggle("offline", !online);
      section.querySelector(".host-state").textContent = online ? "" : gettext("offline");
      const grid = section.querySelector(".grid");
      const cards = list.sort((a, b) => a.user.localeCompare(b.user)).map((s) => {
        const node = document.getElementById("card-" + s.id) || card(s);
        update(node, s);
        return node;
      });
      grid.replaceChildren(...cards);
      wanted.push(section);
    }
    groups.replaceChildren(...wanted);
    for (const id of Array.from(selected)) {
      if (!sessions.some((s) => s.id === id)) selected.delete(id);
    }
    $("empty").hidden = wanted.length > 0;
    $("selected-count").textContent = fill(gettext("{n} selected"), { n: selected.size });
  }

  function toggle(id) {
    if (selected.has(id)) selected.delete(id); else selected.add(id);
    render();
  }

  async function refresh() {
    try {
      [hosts, sessions] = await Promise.all([api("GET", "/fleet/hosts"), api("GET", "/fleet/sessions")]);
      renderHosts();
      render();
      if ($("notice").dataset.kind === "connection") { notice(""); $("notice").dataset.kind = ""; }
    } catch (error) {
      notice(gettext("Reconnecting to the server…"));
      $("notice").dataset.kind = "connection";
    }
  }

  // ---------------------------------------------------------------- thumbnails

  // The same two addresses in turn: the browser revalidates each with its ETag, so the host is
  // asked each time but sends a picture only when the screen changed.
  let turn = 0;
  function refreshThumbs() {
    if (document.visibilityState !== "visible") return;
    turn = 1 - turn;
    for (const node of document.querySelectorAll("#groups .card")) {
      const img = node.querySelector("img.thumb");
      if (!node.dataset.online || img.dataset.loading === "1") continue;
      const [host, id] = node.dataset.id.split("/");
      img.dataset.loading = "1";
      img.src = "/api/v1/fleet/sessions/" + encodeURIComponent(host) + "/" + encodeURIComponent(id) +
        "/thumbnail?size=small&r=" + turn;
    }
  }

  // ---------------------------------------------------------------- actions

  function showResults(results) {
    const body = $("results-body");
    body.replaceChildren(...results.map((r) => {
      const row = el("tr", r.ok ? "ok" : "failed");
      row.append(el("td", "", r.user || "—"), el("td", "", r.id || "—"),
        el("td", "", STATUS_LABELS[r.status] || r.status), el("td", "", r.reason || ""));
      return row;
    }));
    $("results").hidden = false;
  }

  function scope() {
    const host = $("host-filter").value;
    return host ? { all: true, host } : { all: true, fleet: true };
  }

  async function act(action) {
    const ids = Array.from(selected);
    const everyone = action === "logoff-all";
    if (!everyone && !ids.length) { notice(gettext("Select one or more sessions first.")); return; }
    const target = everyone ? scope() : { ids };
    const where = $("host-filter").value || gettext("every host");
    let path = action, body = { ...target };
    if (action === "logoff-all" || action === "logoff-selected") {
      const question = everyone ? fill(gettext("Log off all users on {where}? Unsaved work in their sessions may be lost."), { where }) :
        fill(gettext("Log off {n} sessions? Unsaved work in them may be lost."), { n: ids.length });
      if (!window.confirm(question)) return;
      path = "logoff";
      body.wait = false;
    } else if (action === "block") {
      const text = window.prompt(gettext("Message on the blocked screens:"), "");
      if (text === null) return;
      if (text.trim()) body.message = text;
    } else if (action === "message") {
      const text = window.prompt(gettext("Message to show:"), "");
      if (text === null || !text.trim()) return;
      body.text = text;
    }
    try {
      const answer = await api("POST", "/sessions/" + path, body);
      showResults(answer.results);
      notice("");
    } catch (error) {
      notice(error.message);
    }
    selected.clear();
    refresh();
  }

  for (const button of document.querySelectorAll("#toolbar [data-action]")) {
    button.addEventListener("click", () => act(button.dataset.action));
  }
  $("results-close").addEventListener("click", () => { $("results").hidden = true; });
  $("host-filter").addEventListener("change", render);
  $("search").addEventListener("input", render);
  refresh();
  setInterval(refresh, REFRESH_MS);
  setInterval(refreshThumbs, THUMB_MS);
  setTimeout(refreshThumbs, 500);
})();
