/* Polydesk fleet page: every host of the fleet, then the sessions of the hosts one opens
 * (MultiPoint's Systems), usable with a thousand hosts and fifty thousand sessions.
 *
 * Hosts come first, with their counts by state, from /api/v1/fleet/hosts every two seconds. A
 * host's sessions are asked for only once it is opened (?host=H&limit=500, page after page), and
 * a search is done by the daemon (?q=...&limit=500; more pages as one scrolls to the end). One
 * list holds host rows and rows of cards, and only the rows on screen are in the document
 * (virtualized), so the page costs what the window shows. Thumbnails are asked of their host only
 * for cards on screen while the page is visible, with ETags (an unchanged picture costs a 304).
 * Actions go through the same POST /api/v1/sessions/<action> as the Dashboard, with host/id ids or
 * {"all": true, "fleet": true | "host": name}. No inline script (the CSP forbids it); anything that
 * came from a user is put in the page with textContent.
 */
(function () {
  "use strict";

  const root = document.getElementById("fleet");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const { gettext, fill, STATE_LABELS, STATUS_LABELS } = window.polydeskWords; // words.js
  const api = window.polydeskApi.call; // client.js
  const showPrivileged = root.dataset.privileged === "true";
  const REFRESH_MS = 2000;
  const THUMB_MS = 3000;
  const PAGE = 500;
  const HOST_ROW = 44; // px: a host's row
  const CARD_ROW = 160; // px: a row of cards (a small thumbnail, two lines, the gap)
  const CARD_WIDTH = 184; // px: a card and its gap
  const OVERSCAN = 1; // rows drawn beyond each edge, so a scroll shows no blank

  const selected = new Set();
  const ending = new Set(); // sessions logged off from here: no more thumbnails asked of them
  let hosts = [];
  const opened = new Map(); // host name -> {sessions: [...], next: cursor|null}
  let search = null; // {q, host, sessions, next, total, loading}
  let rows = []; // what the list shows, in order: {kind: "host", host} | {kind: "cards", host, sessions}
  let offsets = []; // top of each row, and the total height at the end
  const drawn = new Map(); // row key -> its element, for the rows in the document

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function notice(text) {
    $("notice").textContent = text;
    $("notice").hidden = !text;
  }

  function query(params) {
    return "?" + Object.entries(params).filter(([, v]) => v !== null && v !== undefined && v !== "")
      .map(([k, v]) => k + "=" + encodeURIComponent(v)).join("&");
  }

  // ---------------------------------------------------------------- what to show

  function visible(s) {
    return showPrivileged || s.role === "standard" || s.own;
  }

  function countsText(h) {
    const parts = [h.sessions === 1 ? gettext("1 session") : fill(gettext("{n} sessions"), { n: h.sessions })];
    const states = h.states || {};
    for (const state of ["active", "disconnected", "logging-off"]) {
      if (states[state]) parts.push(states[state] + " " + (STATE_LABELS[state] || state).toLowerCase());
    }
    if (states.blocked) parts.push(states.blocked + " " + gettext("Blocked").toLowerCase());
    if (!h.online) parts.push(gettext("offline"));
    return parts.join(" · ");
  }

  function layout() {
    const perRow = Math.max(1, Math.floor(($("list").clientWidth - 16) / CARD_WIDTH));
    const filter = $("host-filter").value;
    rows = [];
    const addCards = (host, list) => {
      for (let i = 0; i < list.length; i += perRow) rows.push({ kind: "cards", host, sessions: list.slice(i, i + perRow) });
    };
    if (search) {
      const byHost = new Map();
      for (const s of search.sessions.filter(visible)) {
        if (!byHost.has(s.fleet_host)) byHost.set(s.fleet_host, []);
        byHost.get(s.fleet_host).push(s);
      }
      for (const [name, list] of byHost) {
        rows.push({ kind: "host", host: hosts.find((h) => h.name === name) || { name, online: true, sessions: list.length } });
        addCards(name, list);
      }
    } else {
      for (const h of hosts) {
        if (filter && h.name !== filter) continue;
        rows.push({ kind: "host", host: h });
        const open = opened.get(h.name);
        if (open) addCards(h.name, open.sessions.filter(visible));
      }
    }
    offsets = [0];
    for (const row of rows) offsets.push(offsets[offsets.length - 1] + (row.kind === "host" ? HOST_ROW : CARD_ROW));
    $("rows").style.height = offsets[offsets.length - 1] + "px";
    $("empty").hidden = rows.length > 0;
    $("match-count").textContent = !search ? "" : search.total === 1 ? gettext("1 session matches") :
      fill(gettext("{n} sessions match"), { n: search.total });
    draw();
  }

  function firstRowAt(y) { // binary search in offsets
    let low = 0, high = rows.length - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (offsets[middle] <= y) low = middle; else high = middle - 1;
    }
    return low;
  }

  function draw() {
    const list = $("list");
    const top = list.scrollTop, bottom = top + list.clientHeight;
    const first = Math.max(0, firstRowAt(top) - OVERSCAN);
    const last = Math.min(rows.length - 1, firstRowAt(bottom) + OVERSCAN);
    const keep = new Set();
    for (let i = first; i <= last && rows.length; i++) {
      const row = rows[i];
      const key = row.kind === "host" ? "h:" + row.host.name : "c:" + row.host + ":" + row.sessions[0].id;
      keep.add(key);
      let node = drawn.get(key);
      if (!node) {
        node = row.kind === "host" ? hostRow() : el("div", "card-row");
        drawn.set(key, node);
        $("rows").append(node);
      }
      node.style.top = offsets[i] + "px";
      if (row.kind === "host") fillHost(node, row.host); else fillCards(node, row);
    }
    for (const [key, node] of drawn) {
      if (!keep.has(key)) { node.remove(); drawn.delete(key); }
    }
    if (search && search.next && !search.loading && last >= rows.length - 3) loadSearch(true);
    soon(thumbsOfNewCards);
  }

  function hostRow() {
    const node = el("button", "host-row");
    node.type = "button";
    node.append(el("span", "dot"), el("span", "name"), el("span", "count"));
    node.addEventListener("click", () => toggleHost(node.dataset.host));
    return node;
  }

  function fillHost(node, h) {
    node.dataset.host = h.name;
    node.id = "host-" + h.name;
    node.className = "host-row " + (h.online ? "online" : "offline") + (opened.has(h.name) ? " open" : "");
    node.setAttribute("aria-expanded", opened.has(h.name) || search ? "true" : "false");
    node.querySelector(".name").textContent = h.name;
    node.querySelector(".count").textContent = countsText(h);
  }

  function fillCards(node, row) {
    node.dataset.host = row.host;
    node.setAttribute("role", "listbox");
    node.setAttribute("aria-multiselectable", "true");
    node.setAttribute("aria-label", row.host);
    const cards = row.sessions.map((s) => {
      const card = node.querySelector('[data-id="' + CSS.escape(s.id) + '"]') || makeCard(s);
      update(card, s);
      return card;
    });
    const same = cards.length === node.children.length && cards.every((c, i) => node.children[i] === c);
    if (!same) node.replaceChildren(...cards);
  }

  function makeCard(s) {
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
    node.addEventListener("click", () => toggle(node.dataset.id));
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

  function toggle(id) {
    if (selected.has(id)) selected.delete(id); else selected.add(id);
    $("selected-count").textContent = fill(gettext("{n} selected"), { n: selected.size });
    draw();
  }

  // ---------------------------------------------------------------- loading

  async function loadHost(name) { // every page of one host's sessions
    let sessions = [], cursor = null;
    do {
      const page = await api("GET", "/fleet/sessions" + query({ host: name, limit: PAGE, cursor }));
      sessions = sessions.concat(page.sessions);
      cursor = page.next;
    } while (cursor && opened.has(name));
    if (opened.has(name)) opened.set(name, { sessions });
  }

  async function toggleHost(name) {
    if (search) return;
    if (opened.has(name)) { opened.delete(name); layout(); return; }
    opened.set(name, { sessions: [] });
    layout();
    try { await loadHost(name); } catch (error) { notice(error.message); }
    layout();
  }

  let searchTurn = 0;
  async function loadSearch(more, again) { // again: the same search, refreshed where it is
    const q = $("search").value.trim();
    if (!q) { search = null; layout(); return; }
    const host = $("host-filter").value;
    const turn = more ? searchTurn : ++searchTurn;
    const before = more && search ? search : { q, host, sessions: [], next: null, total: 0 };
    before.loading = true;
    if (!more) search = before;
    try {
      const page = await api("GET", "/fleet/sessions" + query({ q, host, limit: PAGE, cursor: more ? before.next : null }));
      if (turn !== searchTurn) return; // another search began meanwhile
      search = { q, host, sessions: before.sessions.concat(page.sessions), next: page.next, total: page.total, loading: false };
      if (!more && !again) $("list").scrollTop = 0;
      layout();
    } catch (error) {
      before.loading = false;
      notice(error.message);
    }
  }

  function renderFilter() {
    const filter = $("host-filter");
    const names = hosts.map((h) => h.name + (h.online ? "" : "!")).join(",");
    if (filter.dataset.names === names) return; // a thousand options: rebuilt only when they change
    filter.dataset.names = names;
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

  async function refresh() {
    try {
      hosts = await api("GET", "/fleet/hosts");
      renderFilter();
      const names = new Set(hosts.map((h) => h.name));
      for (const name of Array.from(opened.keys())) {
        if (!names.has(name)) opened.delete(name); else await loadHost(name);
      }
      if (search && !search.next && !search.loading && search.sessions.length <= PAGE) await loadSearch(false, true);
      layout();
      if ($("notice").dataset.kind === "connection") { notice(""); $("notice").dataset.kind = ""; }
    } catch (error) {
      notice(gettext("Reconnecting to the server…"));
      $("notice").dataset.kind = "connection";
    }
  }

  // ---------------------------------------------------------------- thumbnails

  const timers = new Map();
  function soon(fn) { // once, a moment after the last call: a scroll asks for the cards it stops on
    clearTimeout(timers.get(fn));
    timers.set(fn, setTimeout(fn, 300));
  }

  // The same two addresses in turn: the browser revalidates each with its ETag, so the host is
  // asked each time but sends a picture only when the screen changed.
  let turn = 0;
  const thumbsOfNewCards = () => refreshThumbs(true); // scrolled to, or just opened: at once
  function refreshThumbs(onlyNew) {
    if (document.visibilityState !== "visible") return;
    if (onlyNew !== true) turn = 1 - turn;
    const view = $("list").getBoundingClientRect();
    for (const node of $("rows").querySelectorAll(".card")) {
      const box = node.getBoundingClientRect();
      if (box.bottom <= view.top || box.top >= view.bottom) continue; // drawn, but not on screen
      const img = node.querySelector("img.thumb");
      if (!node.dataset.online || img.dataset.loading === "1" || ending.has(node.dataset.id) ||
        node.classList.contains("state-logging-off")) continue; // its screen is going
      if (onlyNew === true && img.getAttribute("src")) continue; // the next turn revalidates it
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
      if (path === "logoff") for (const r of answer.results) if (r.ok) ending.add(r.id);
      showResults(answer.results);
      notice("");
    } catch (error) {
      notice(error.message);
    }
    selected.clear();
    $("selected-count").textContent = fill(gettext("{n} selected"), { n: 0 });
    refresh();
  }

  for (const button of document.querySelectorAll("#toolbar [data-action]")) {
    button.addEventListener("click", () => act(button.dataset.action));
  }
  $("results-close").addEventListener("click", () => { $("results").hidden = true; });
  $("host-filter").addEventListener("change", () => {
    const name = $("host-filter").value;
    if (search) { loadSearch(false); return; }
    if (name && !opened.has(name)) { toggleHost(name); return; } // one host chosen: its sessions shown
    layout();
  });
  const startSearch = () => loadSearch(false);
  $("search").addEventListener("input", () => soon(startSearch));
  $("list").addEventListener("scroll", () => window.requestAnimationFrame(draw), { passive: true });
  window.addEventListener("resize", () => layout());
  refresh().then(() => { root.dataset.ready = "true"; });
  setInterval(refresh, REFRESH_MS);
  setInterval(refreshThumbs, THUMB_MS);
})();
