/* Polydesk Dashboard: live grid, selection, menus, confirmation, results.
 *
 * No inline script anywhere (the Content-Security-Policy forbids it): the pages
 * only carry data-* attributes, and this file does the rest. Anything that came
 * from a user (names, messages, reasons) is put in the page with textContent,
 * never as HTML. Cards themselves are rendered by the server and escaped there.
 */
(function () {
  "use strict";

  const grid = document.getElementById("grid");
  if (!grid) return;
  const mode = grid.dataset.mode; // "dashboard" or "own"
  const $ = (id) => document.getElementById(id);
  // Words in the page's language, and the labels the fleet page shares
  const { gettext, fill, STATE_LABELS } = window.polydeskWords; // words.js
  const STATUS_LABELS = Object.assign({}, window.polydeskWords.STATUS_LABELS, {
    pending: gettext("Working…"), "logoff-cancelled": gettext("Log-off cancelled"),
  });

  const view = {
    size: mode === "own" ? "large" : (localStorage.getItem("polydesk.size") || "medium"),
    filter: localStorage.getItem("polydesk.filter") || "all",
    sort: localStorage.getItem("polydesk.sort") || "user",
    search: "",
  };
  const selected = new Set();
  const versions = new Map(); // session id -> newest thumbnail version announced
  let anchor = null; // the card Shift-click extends from

  const cardOf = (id) => document.getElementById("card-" + id);
  const cards = () => Array.from(grid.querySelectorAll(".card"));
  const shownCards = () => cards().filter((c) => !c.hidden);

  // ---------------------------------------------------------------- thumbnails

  // The daemon pushes each new thumbnail over the events socket as a binary message: the part of
  // the picture that changed since the last one it sent (the whole picture first), a JPEG to draw
  // at a spot of the card's canvas (see web/events.py). It sends only the cards shown, at the size
  // shown, as this page tells it; a card hidden by the filter or search costs nothing.
  const canvases = new Map(); // session id -> the canvas holding its picture (the card's, once it exists)
  const drawing = new Map(); // session id -> the last draw under way: parts are drawn in order
  const decoder = new TextDecoder();

  function canvasOf(id) {
    const card = cardOf(id);
    const own = card && card.querySelector("canvas.thumb");
    const held = canvases.get(id);
    if (own && held && own !== held) { // the card was rendered again: keep the picture drawn so far
      own.width = held.width;
      own.height = held.height;
      own.getContext("2d").drawImage(held, 0, 0);
      own.dataset.version = held.dataset.version || "";
    }
    const canvas = own || held || document.createElement("canvas");
    canvases.set(id, canvas);
    return canvas;
  }

  function drawPicture(data) {
    const length = new DataView(data).getUint16(0);
    const head = JSON.parse(decoder.decode(new Uint8Array(data, 2, length)));
    const jpeg = new Blob([new Uint8Array(data, 2 + length)], { type: "image/jpeg" });
    const id = head.session_id;
    const previous = drawing.get(id) || Promise.resolve();
    const done = Promise.all([previous, createImageBitmap(jpeg)]).then(([, bitmap]) => {
      const canvas = canvasOf(id);
      const [width, height] = head.thumbnail;
      if (canvas.width !== width || canvas.height !== height) {
        canvas.width = width;
        canvas.height = height;
      }
      canvas.getContext("2d").drawImage(bitmap, head.at[0], head.at[1]);
      bitmap.close();
      canvas.dataset.version = String(head.version);
    }).catch(() => { /* a picture that does not decode: the next one replaces it */ });
    drawing.set(id, done);
    done.then(() => { if (drawing.get(id) === done) drawing.delete(id); });
  }

  let socket = null;
  let wanted = ""; // the last {"kind": "pictures"} message sent on this socket

  function wantPictures() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const all = cards();
    const shown = all.filter((c) => !c.hidden).map((c) => c.dataset.id);
    const message = JSON.stringify({ kind: "pictures", size: pictureSize(),
      sessions: shown.length === all.length ? null : shown });
    if (message !== wanted) {
      wanted = message;
      socket.send(message);
    }
  }

  // ---------------------------------------------------------------- the view: size, filter, search, sort

  // groups.js adds the group filter and the custom order: window.polydeskView (hides, rank).
  const extra = () => window.polydeskView || null;

  function applyView() {
    grid.classList.remove("size-small", "size-medium", "size-large", "size-fit");
    grid.classList.add("size-" + view.size);
    const search = view.search.toLowerCase();
    for (const card of cards()) {
      const hide = (view.filter === "active" && card.dataset.state === "disconnected") ||
        (search !== "" && !card.dataset.user.toLowerCase().includes(search)) ||
        Boolean(extra() && extra().hides(card));
      card.hidden = hide;
      if (hide && selected.delete(card.dataset.id)) anchor = null;
      if (!hide && canvases.has(card.dataset.id)) canvasOf(card.dataset.id);
    }
    const key = view.sort === "logon"
      ? (c) => [parseFloat(c.dataset.logon), c.dataset.user]
      : view.sort === "custom" && extra()
        ? (c) => [extra().rank(c), c.dataset.user.toLowerCase()]
        : (c) => [c.dataset.user.toLowerCase(), parseFloat(c.dataset.logon)];
    const sorted = cards().sort((a, b) => {
      const ka = key(a), kb = key(b);
      return ka[0] < kb[0] ? -1 : ka[0] > kb[0] ? 1 : ka[1] < kb[1] ? -1 : ka[1] > kb[1] ? 1 : 0;
    });
    sorted.forEach((card, i) => { if (grid.children[i] !== card) grid.appendChild(card); });
    const empty = $("empty");
    if (empty) empty.hidden = shownCards().length > 0;
    const ownActions = $("own-actions");
    if (ownActions) ownActions.hidden = cards().length === 0;
    fitCards();
    renderSelection();
    wantPictures();
  }

  // "Fit all": the widest cards with which every shown card fits on one screen, no narrower
  // than the small size (below it, the page scrolls). The pictures come at the nearest size
  // the daemon makes that is not smaller than the card, so they are never blown up much.
  const CARD_WIDTHS = { small: 160, medium: 320, large: 480 };
  let fitWidth = 0;

  function fitCards() {
    if (view.size !== "fit") { grid.style.removeProperty("--card-width"); fitWidth = 0; return; }
    const n = Math.max(1, shownCards().length);
    const gap = 16, border = 12, footer = 52; // px: the grid's gap, a card's padding and borders, its footer
    const width = grid.clientWidth;
    const height = Math.max(200, window.innerHeight - grid.getBoundingClientRect().top - 24);
    let best = CARD_WIDTHS.small;
    for (let columns = 1; columns <= n; columns++) {
      const w = Math.floor((width - gap * (columns - 1)) / columns) - border;
      const rows = Math.ceil(n / columns);
      if (w > best && rows * (w * 10 / 16 + border + footer) + gap * (rows - 1) <= height) best = w;
    }
    fitWidth = Math.min(best, 960);
    grid.style.setProperty("--card-width", fitWidth + "px");
  }

  // The picture size to ask the daemon for (small, medium or large).
  function pictureSize() {
    if (view.size !== "fit") return view.size;
    return fitWidth <= CARD_WIDTHS.small ? "small" : fitWidth <= CARD_WIDTHS.medium ? "medium" : "large";
  }
  window.addEventListener("resize", () => { if (view.size === "fit") { fitCards(); wantPictures(); } });

  function bindControl(id, key, store) {
    const el = $(id);
    if (!el) return;
    if (key !== "search") el.value = view[key];
    el.addEventListener(key === "search" ? "input" : "change", () => {
      view[key] = el.value;
      if (store) localStorage.setItem("polydesk." + key, el.value);
      applyView();
    });
  }
  bindControl("size", "size", true);
  bindControl("filter", "filter", true);
  bindControl("sort", "sort", true);
  bindControl("search", "search", false);
  // For groups.js: the view to apply again, and the selection to save as a group or move.
  // weblimits.js: the selection, and the results panel for what it did.
  window.polydeskDashboard = { applyView, selected, view, cardOf, showResults: (...a) => showResults(...a) };

  // ---------------------------------------------------------------- selection

  // One thumbnail is in the Tab order (roving tabindex): the last one focused, else the first shown.
  let focusId = null;

  function focusCard(card) {
    focusId = card.dataset.id;
    renderSelection();
    card.focus();
  }

  function renderSelection() {
    const shown = shownCards();
    const current = shown.find((c) => c.dataset.id === focusId) || shown[0];
    for (const card of cards()) {
      const on = selected.has(card.dataset.id);
      card.classList.toggle("selected", on);
      if (card.hasAttribute("aria-selected")) {
        card.setAttribute("aria-selected", on ? "true" : "false");
        card.tabIndex = card === current ? 0 : -1;
      }
    }
    const count = $("selected-count");
    if (count) count.textContent = fill(gettext("{n} selected"), { n: selected.size });
    // a hint about what to select is stale once there is a selection (or nothing to select)
    // (an empty dashboard keeps its hint: it was given with nothing to select)
    if (hinting && (selected.size > 0 || (shown.length === 0 && hintedOver > 0))) notice("");
  }

  function choose(card, event) {
    const id = card.dataset.id;
    if (event.shiftKey && anchor && cardOf(anchor)) {
      const shown = shownCards();
      const a = shown.indexOf(cardOf(anchor)), b = shown.indexOf(card);
      if (!(event.ctrlKey || event.metaKey)) selected.clear();
      for (let i = Math.min(a, b); i <= Math.max(a, b); i++) selected.add(shown[i].dataset.id);
    } else if (event.ctrlKey || event.metaKey) {
      if (!selected.delete(id)) selected.add(id);
      anchor = id;
    } else {
      selected.clear();
      selected.add(id);
      anchor = id;
    }
    renderSelection();
  }

  if (mode === "dashboard") {
    grid.addEventListener("click", (event) => {
      const card = event.target.closest(".card");
      if (card) choose(card, event);
      else if (!event.shiftKey && !event.ctrlKey && !event.metaKey) { selected.clear(); renderSelection(); }
    });
    // The keyboard, as a multi-select listbox (WAI-ARIA): arrows, Home and End move the focus
    // (Shift extends the selection), Space or Enter toggles the focused thumbnail, Ctrl+A
    // selects all, Shift+F10 or the context-menu key opens the actions menu.
    grid.addEventListener("keydown", (event) => {
      const card = event.target.closest(".card");
      if (!card) return;
      const shown = shownCards();
      const here = shown.indexOf(card);
      const columns = Math.max(1, shown.filter((c) => c.offsetTop === shown[0].offsetTop).length);
      const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns, ArrowUp: -columns,
        Home: -here, End: shown.length - 1 - here };
      if (event.key in moves) {
        event.preventDefault();
        const next = shown[Math.min(shown.length - 1, Math.max(0, here + moves[event.key]))];
        if (!next) return;
        if (event.shiftKey) choose(next, { shiftKey: true, ctrlKey: false, metaKey: false });
        focusCard(next);
      } else if (event.key === " " || event.key === "Enter") {
        event.preventDefault();
        choose(card, { ctrlKey: true, shiftKey: event.shiftKey, metaKey: false });
      } else if ((event.key === "a" || event.key === "A") && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        for (const c of shown) selected.add(c.dataset.id);
        renderSelection();
      } else if (event.key === "ContextMenu" || (event.key === "F10" && event.shiftKey)) {
        event.preventDefault();
        const box = card.getBoundingClientRect();
        openContextMenu(card, box.left + box.width / 2, box.top + box.height / 2);
      }
    });
    grid.addEventListener("focusin", (event) => {
      const card = event.target.closest(".card");
      if (card) focusId = card.dataset.id;
    });
    $("select-all").addEventListener("click", () => {
      for (const card of shownCards()) selected.add(card.dataset.id);
      renderSelection();
    });
  }

  // ---------------------------------------------------------------- menus

  // The toolbar's menus (Log off, Project): a button and its dropdown each.
  const menus = Array.from(document.querySelectorAll("#toolbar .menu")).map((menu) => ({
    button: menu.querySelector("[aria-haspopup=menu]"), list: menu.querySelector(".dropdown") }));
  const contextMenu = $("context-menu");

  let menuOpener = null; // where the focus goes back when a menu closes with Escape

  function closeMenus() {
    for (const menu of menus) { menu.list.hidden = true; menu.button.setAttribute("aria-expanded", "false"); }
    if (contextMenu) contextMenu.hidden = true;
  }

  function openContextMenu(card, x, y) {
    if (!selected.has(card.dataset.id)) {
      selected.clear();
      selected.add(card.dataset.id);
      anchor = card.dataset.id;
      renderSelection();
    }
    closeMenus();
    menuOpener = card;
    labelContextMenu();
    contextMenu.hidden = false;
    contextMenu.style.left = Math.max(0, Math.min(x, window.innerWidth - contextMenu.offsetWidth - 4)) + "px";
    contextMenu.style.top = Math.max(0, Math.min(y, window.innerHeight - contextMenu.offsetHeight - 4)) + "px";
    contextMenu.querySelector("button").focus();
  }

  // The menu says how many sessions it acts on, and offers Cancel log-off only when one of
  // them is logging off. Its first item (the one focused) is harmless: Enlarge.
  function labelContextMenu() {
    const ids = Array.from(selected).filter((id) => cardOf(id));
    const n = ids.length;
    contextMenu.querySelector("[data-action=logoff-selected]").textContent = n === 1
      ? gettext("Log off 1 selected session…") : fill(gettext("Log off {n} selected sessions…"), { n: n });
    const cancel = contextMenu.querySelector("[data-action=cancel-logoff]");
    cancel.parentElement.hidden = !ids.some((id) => cardOf(id).dataset.state === "logging-off");
  }

  // Up and Down (and Home, End) move between a menu's items; Tab leaves it closed.
  for (const menu of [...menus.map((m) => m.list), contextMenu]) {
    if (!menu) continue;
    menu.addEventListener("keydown", (event) => {
      const items = Array.from(menu.querySelectorAll("[role=menuitem]")).filter((i) => !i.closest("[hidden]"));
      const here = items.indexOf(document.activeElement);
      const next = { ArrowDown: here + 1, ArrowUp: here - 1, Home: 0, End: items.length - 1 }[event.key];
      if (next !== undefined) {
        event.preventDefault();
        items[(next + items.length) % items.length].focus();
      } else if (event.key === "Tab") {
        closeMenus();
      }
    });
  }

  for (const { button, list } of menus) {
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      const open = list.hidden;
      closeMenus();
      list.hidden = !open;
      button.setAttribute("aria-expanded", open ? "true" : "false");
      menuOpener = button;
      if (open) list.querySelector("button").focus();
    });
  }

  if (contextMenu) {
    grid.addEventListener("contextmenu", (event) => {
      const card = event.target.closest(".card");
      if (!card) return;
      event.preventDefault();
      openContextMenu(card, event.clientX, event.clientY);
    });
  }

  document.addEventListener("click", (event) => {
    if (!event.target.closest(".dropdown, .context-menu")) closeMenus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    const open = menus.some((m) => !m.list.hidden) || (contextMenu && !contextMenu.hidden);
    if (open) event.preventDefault(); // this Escape is the menu's (the enlarged view stays)
    closeMenus();
    if (open && menuOpener && document.contains(menuOpener)) menuOpener.focus();
    menuOpener = null;
  });

  // ---------------------------------------------------------------- actions

  const ACTIONS = {
    "logoff-selected": { path: "logoff", title: gettext("Log off selected users"), verb: gettext("Log off"),
      one: gettext("Log off 1 session:"), many: gettext("Log off {n} sessions:"), warn: true,
      fields: ["grace"] },
    "logoff-all": { path: "logoff", title: gettext("Log off all users"), verb: gettext("Log off"),
      one: gettext("Log off 1 session:"), many: gettext("Log off {n} sessions:"), warn: true,
      fields: ["grace"], all: true },
    disconnect: { path: "disconnect", title: gettext("Disconnect"), verb: gettext("Disconnect"), fields: [],
      one: gettext("Disconnect 1 session."), many: gettext("Disconnect {n} sessions."),
      text: gettext("Their sessions keep running; logging on again resumes them.") },
    block: { path: "block", title: gettext("Block"), verb: gettext("Block"), fields: ["message"],
      one: gettext("Block 1 session."), many: gettext("Block {n} sessions."),
      text: gettext("Their screens are covered with the message and their input is ignored.") },
    unblock: { path: "unblock", title: gettext("Unblock"), verb: gettext("Unblock"), fields: [],
      one: gettext("Unblock 1 session:"), many: gettext("Unblock {n} sessions:") },
    message: { path: "message", title: gettext("Send message"), verb: gettext("Send"), fields: ["message", "time"],
      one: gettext("Send to 1 session:"), many: gettext("Send to {n} sessions:") },
    // puts sessions back as they were: nothing to confirm
    "cancel-logoff": { path: "logoff/cancel", title: gettext("Cancel log-off"), fields: [], direct: true,
      loggingOff: true },
  };

  let hinting = false; // the notice says what to select first: cleared when that changes
  let hintedOver = 0; // how many sessions were shown when the hint was given

  function notice(text, isHint) {
    const el = $("notice");
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
    hinting = Boolean(text && isHint);
    if (hinting) hintedOver = shownCards().length;
  }

  // Actions on sessions: POST /api/v1/sessions/PATH (client.js); the answer has one result each.
  async function api(path, body) {
    return window.polydeskApi.call("POST", "/sessions/" + path, body);
  }

  async function targetsOf(action) {
    if (!action.all) {
      return Array.from(selected).filter((id) => cardOf(id))
        .filter((id) => !action.loggingOff || cardOf(id).dataset.state === "logging-off")
        .map((id) => ({ id: id, user: cardOf(id).dataset.user }));
    }
    // "All" is every session on this Dashboard the caller may log off, never their own:
    // the server says which (what-if), the grid says which are shown.
    const preview = await api("logoff", { all: true, what_if: true });
    return preview.results.filter((r) => r.ok && cardOf(r.id)).map((r) => ({ id: r.id, user: r.user }));
  }

  // ---------------------------------------------------------------- confirmation dialog

  const dialog = $("confirm");
  let answer = null; // resolves the open dialog's promise

  let dialogOpener = null; // the focus goes back there when the dialog closes (Escape too)

  function confirmWith(action, targets, opener) {
    dialogOpener = opener || null;
    $("confirm-title").textContent = action.title;
    const n = targets.length;
    $("confirm-text").textContent = (n === 1 ? action.one : fill(action.many, { n: n })) +
      (action.text ? " " + action.text : "");
    const list = $("confirm-users");
    list.replaceChildren(...targets.map((t) => {
      const li = document.createElement("li");
      li.textContent = fill(gettext("{user} (session {id})"), { user: t.user, id: t.id });
      return li;
    }));
    $("confirm-warning").hidden = !action.warn;
    $("grace-field").hidden = !action.fields.includes("grace");
    $("message-field").hidden = !action.fields.includes("message");
    $("time-field").hidden = !action.fields.includes("time");
    const message = $("message");
    // Left empty, a block shows its default text in each session's own language (the server
    // translates it per session): the placeholder only shows what that will say.
    message.value = "";
    message.placeholder = action.path === "block" ? message.dataset.blockDefault : "";
    $("message-label").textContent = action.path === "block"
      ? gettext("Message on the screen (empty: this text, in each user's language)") : gettext("Message");
    $("confirm-ok").textContent = action.verb;
    $("confirm-error").hidden = true;
    dialog.showModal();
    // never the button that acts: Enter, Enter from a menu must not log a class off
    (action.fields.includes("message") ? message : $("confirm-cancel")).focus();
    return new Promise((resolve) => { answer = { action: action, resolve: resolve }; });
  }

  function options(action) {
    const out = {};
    if (action.fields.includes("grace")) {
      const grace = $("grace").value.trim();
      if (grace !== "") {
        const seconds = Number(grace);
        if (!Number.isInteger(seconds) || seconds < 0 || seconds > 3600) {
          throw new Error(gettext("The grace period is a whole number of seconds from 0 to 3600."));
        }
        out.grace = seconds;
      }
    }
    if (action.path === "block") {
      const text = $("message").value.trim();
      if (text) out.message = text;
    }
    if (action.path === "message") {
      const text = $("message").value.trim();
      if (!text) throw new Error(gettext("Write the message to send."));
      out.text = text;
      const time = $("msg-time").value.trim();
      if (time !== "") {
        const seconds = Number(time);
        if (!Number.isInteger(seconds) || seconds < 1) {
          throw new Error(gettext("The time is a whole number of seconds."));
        }
        out.time = seconds;
      }
    }
    return out;
  }

  if (dialog) {
    $("confirm-form").addEventListener("submit", (event) => {
      event.preventDefault();
      if (!answer) return;
      try {
        const chosen = options(answer.action);
        const resolve = answer.resolve;
        answer = null;
        dialog.close();
        resolve(chosen);
      } catch (error) {
        $("confirm-error").textContent = error.message;
        $("confirm-error").hidden = false;
      }
    });
    $("confirm-cancel").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      if (answer) { answer.resolve(null); answer = null; }
      const back = dialogOpener && document.contains(dialogOpener) ? dialogOpener : null;
      dialogOpener = null;
      if (back) back.focus();
    });
  }

  // ---------------------------------------------------------------- results

  function showResults(title, rows) {
    $("results-title").textContent = title;
    $("results-body").replaceChildren(...rows.map((r) => {
      const tr = document.createElement("tr");
      tr.dataset.id = r.id;
      tr.className = r.ok === false ? "failed" : "ok";
      for (const text of [r.user || "—", r.id || "—", STATUS_LABELS[r.status] || r.status, r.reason || ""]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    }));
    $("results").hidden = false;
  }

  window.polydeskDashboard.showResults = showResults; // apps.js: Launch shows its results here too

  function markEnded(id) {
    const body = $("results-body");
    if (!body) return;
    for (const tr of body.querySelectorAll("tr")) {
      if (tr.dataset.id === id && tr.children[2].textContent === STATUS_LABELS["logging-off"]) {
        tr.children[2].textContent = STATUS_LABELS.ended;
      }
    }
  }

  async function run(name) {
    const action = ACTIONS[name];
    // where the focus goes back after the dialog: the card or button the menu was opened from
    const active = document.activeElement;
    const opener = active && active.closest && active.closest(".dropdown, .context-menu") ? menuOpener : active;
    closeMenus();
    notice("");
    let targets;
    try {
      targets = await targetsOf(action);
    } catch (error) {
      notice(error.message);
      return;
    }
    if (targets.length === 0) {
      if (action.all) notice(gettext("There is no other user's session to log off."));
      else if (action.loggingOff && selected.size > 0) notice(gettext("None of the selected sessions is logging off."), true);
      else notice(gettext("Select one or more sessions first: click a thumbnail; Ctrl-click or Shift-click to add more."), true);
      return;
    }
    const chosen = action.direct ? {} : await confirmWith(action, targets, opener);
    if (!chosen) return;
    const body = Object.assign({ ids: targets.map((t) => t.id) }, chosen);
    await perform(action.title, action.path, body, targets, action.path === "logoff" ? "logging-off" : "pending");
  }

  // An action on sessions with its results panel: each target pending, then what the daemon said.
  async function perform(title, path, body, targets, pending) {
    showResults(title, targets.map((t) => ({ id: t.id, user: t.user, status: pending || "pending", reason: "" })));
    try {
      const result = await api(path, body);
      showResults(fill(gettext("{action}: {done} done, {failed} failed"),
        { action: title, done: result.succeeded, failed: result.failed }), result.results);
    } catch (error) {
      showResults(fill(gettext("{action}: failed"), { action: title }), targets.map((t) => ({ id: t.id, user: t.user,
        status: "failed", ok: false, reason: error.message })));
    }
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    if (button && ACTIONS[button.dataset.action]) {
      event.stopPropagation();
      run(button.dataset.action);
    }
  });

  // ---------------------------------------------------------------- Enlarge / Take control

  // One session at a time, shown by static/station.js (an ES module with noVNC) in the
  // enlarged view; this script only says which session and how. The module may still be
  // loading: it also picks up the last request left here when it starts.
  function openStation(id, stationMode) {
    const card = cardOf(id);
    if (!card) return;
    window.polydeskStation = { id: id, user: card.dataset.user, mode: stationMode };
    document.dispatchEvent(new CustomEvent("polydesk:station", { detail: window.polydeskStation }));
  }

  if (mode === "dashboard") {
    document.addEventListener("click", (event) => {
      const button = event.target.closest("button[data-station]");
      if (!button) return;
      event.stopPropagation();
      closeMenus();
      const ids = Array.from(selected).filter((id) => cardOf(id));
      if (ids.length !== 1) {
        notice(ids.length === 0 ? gettext("Select one session first: click its thumbnail.")
          : gettext("Select only one session to enlarge."), true);
        return;
      }
      notice("");
      openStation(ids[0], button.dataset.station);
    });
    grid.addEventListener("dblclick", (event) => {
      const card = event.target.closest(".card");
      if (card) openStation(card.dataset.id, "view");
    });
  }
  // Escape closes the enlarged view, back to its card, unless the keys go to the session
  // (Take control: the focus is on its screen) or a menu or dialog takes the Escape.
  document.addEventListener("keydown", (event) => {
    const panel = $("enlarge");
    if (event.key !== "Escape" || event.defaultPrevented || !panel || panel.hidden) return;
    if ((dialog && dialog.open) || panel.querySelector("#enlarge-screen").contains(document.activeElement)) return;
    const card = cardOf(panel.dataset.session || "");
    $("enlarge-close").click();
    if (card) focusCard(card);
  });

  const resultsClose = $("results-close");
  if (resultsClose) resultsClose.addEventListener("click", () => { $("results").hidden = true; });

  // ---------------------------------------------------------------- live updates

  // Card updates are ordered by the session's version (one more on every change the daemon
  // stores; in each event and in each card as data-version), never by arrival: a card never
  // takes an older version than it shows, and a card still being fetched takes, once it
  // arrives, the newest event that came meanwhile. Only one fetch per card is under way.
  const loading = new Map(); // session id -> the newest session event seen while its card loads

  const versionOf = (card) => Number(card.dataset.version || 0);

  async function loadCard(id, session) {
    if (loading.has(id)) { newer(id, session); return; }
    if (cardOf(id)) { if (session) updateCard(session); return; }
    loading.set(id, session || null);
    try {
      const url = "/ui/cards/" + encodeURIComponent(id) + "?size=" + pictureSize();
      const response = await fetch(url, { credentials: "same-origin" });
      if (!response.ok) return; // gone meanwhile, or not ours to show: its ended event says the rest
      const holder = document.createElement("template");
      holder.innerHTML = (await response.text()).trim(); // rendered and escaped by the server
      const card = holder.content.querySelector(".card");
      if (!card || card.id !== "card-" + id || !loading.has(id)) return; // ended while it loaded
      const present = cardOf(id);
      if (!present) grid.appendChild(card);
      else if (versionOf(present) < versionOf(card)) present.replaceWith(card);
    } catch (e) {
      return; // the events socket shows the connection state; the next event tries again
    } finally {
      const pending = loading.get(id);
      loading.delete(id);
      if (pending && cardOf(id)) updateCard(pending);
      applyView();
    }
  }

  function newer(id, session) {
    const held = loading.get(id);
    if (session && (!held || (session.version || 0) > (held.version || 0))) loading.set(id, session);
  }

  function updateCard(session) {
    const card = cardOf(session.id);
    if (!card || loading.has(session.id)) { loadCard(session.id, session); return; }
    if ((session.version || 0) < versionOf(card)) return; // older than what the card shows
    card.dataset.version = String(session.version || 0);
    card.dataset.state = session.state;
    card.dataset.blocked = session.blocked ? "true" : "false";
    card.classList.remove("state-active", "state-disconnected", "state-logging-off");
    card.classList.add("state-" + session.state);
    card.classList.toggle("is-blocked", session.blocked);
    card.querySelector(".state").textContent = STATE_LABELS[session.state] || session.state;
    card.querySelector(".blocked-badge").hidden = !session.blocked;
    const web = card.querySelector(".web-badge");  // a web limit (weblimits.js)
    if (web) web.hidden = !session.web_limit;
    const undone = card.querySelector(".undone-badge");  // the block was undone from inside
    undone.hidden = !session.block_undone;
    undone.querySelector(".undone-count").textContent = String(session.block_undone || 0);
    const station = card.querySelector(".station");
    if (station) {
      station.textContent = session.station || "";
      station.hidden = !session.station;
    }
    const client = card.querySelector(".client");
    if (client) {
      client.textContent = session.client || "";
      client.hidden = !session.client;
    }
    document.dispatchEvent(new CustomEvent("polydesk:card", { detail: { card: card, session: session } }));
  }

  function removeCard(id) {
    loading.delete(id);
    const card = cardOf(id);
    if (card) card.remove();
    selected.delete(id);
    canvases.delete(id);
    if (anchor === id) anchor = null;
    markEnded(id);
    document.dispatchEvent(new CustomEvent("polydesk:card-removed", { detail: { id: id } }));
  }

  function handle(message) {
    switch (message.kind) {
      case "snapshot": {
        const ids = new Set(message.sessions.map((s) => s.id));
        for (const card of cards()) if (!ids.has(card.dataset.id)) removeCard(card.dataset.id);
        for (const session of message.sessions) updateCard(session);
        applyView();
        break;
      }
      case "session-started":
        loadCard(message.session_id, message.session);
        break;
      case "session-changed":
        if (message.session) updateCard(message.session);
        applyView();
        break;
      case "session-ended":
        removeCard(message.session_id);
        applyView();
        document.dispatchEvent(new CustomEvent("polydesk:session-ended", { detail: { id: message.session_id } }));
        break;
      default: // the others (chat.js) hear the rest
        document.dispatchEvent(new CustomEvent("polydesk:event", { detail: message }));
        break;
    }
  }

  let retry = 500;
  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const which = mode === "dashboard" ? "dashboard" : "all";
    socket = new WebSocket(scheme + "//" + window.location.host +
      "/api/v1/events?thumbnails=true&view=" + which + "&pictures=" + pictureSize());
    socket.binaryType = "arraybuffer";
    wanted = JSON.stringify({ kind: "pictures", size: pictureSize(), sessions: null });
    socket.addEventListener("open", () => {
      retry = 500;
      wantPictures();
      const banner = $("connection");
      if (banner) banner.hidden = true;
    });
    socket.addEventListener("message", (event) => {
      if (event.data instanceof ArrayBuffer) drawPicture(event.data);
      else handle(JSON.parse(event.data));
    });
    socket.addEventListener("close", () => {
      const banner = $("connection");
      if (banner) banner.hidden = false;
      window.setTimeout(connect, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }

  // Idle times change without events; a cheap list every 15 s keeps them current.
  function formatIdle(seconds) {
    if (seconds === null || seconds === undefined) return gettext("idle —");
    if (seconds < 60) return gettext("in use");
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return fill(gettext("idle {minutes} min"), { minutes: minutes });
    return fill(gettext("idle {hours} h {minutes} min"),
      { hours: Math.floor(minutes / 60), minutes: String(minutes % 60).padStart(2, "0") });
  }
  async function refreshIdle() {
    try {
      const response = await fetch("/api/v1/sessions", { credentials: "same-origin" });
      if (!response.ok) return;
      for (const session of await response.json()) {
        const card = cardOf(session.id);
        if (card) card.querySelector(".idle").textContent = formatIdle(session.idle_s);
      }
    } catch (e) { /* the events socket shows the connection state */ }
  }

  document.body.addEventListener("htmx:afterRequest", (event) => {
    // a sign-in ended meanwhile (a log-off signs the station out): back to the sign-in form
    if (event.detail && event.detail.xhr && event.detail.xhr.status === 401) {
      window.location.assign("/signin");
      return;
    }
    // the own page's buttons answer with a results fragment; the socket updates the card itself
    if (event.detail && event.detail.target && event.detail.target.id === "own-result") applyView();
  });

  // What the other scripts of the Dashboard (groups.js, projection.js) act through.
  Object.assign(window.polydeskDashboard, {
    selectedIds: () => Array.from(selected).filter((id) => cardOf(id)),
    cards: cards,
    cardOf: cardOf,
    post: api,
    perform: perform,
    confirm: confirmWith,
    showResults: showResults,
    notice: notice,
    closeMenus: closeMenus,
  });

  applyView();
  connect();
  window.setInterval(refreshIdle, 15000);
  // Every deferred script of the page (groups, projection, applications ...) has run by then:
  // the page answers clicks and keys from now on (tests wait for it).
  document.addEventListener("DOMContentLoaded", () => { grid.dataset.ready = "true"; });
})();
