/* Polydesk Dashboard: launch applications and open addresses on sessions, and the applications
 * panel of the selected session (list, close), as MultiPoint's Launch and Close.
 *
 * Beside dashboard.js, whose selection and results panel it uses (window.polydeskDashboard).
 * What is typed is split here into an argument vector (quotes group words; nothing is
 * expanded) or sent whole as an address: the daemon never hands it to a shell. Names and
 * titles come from the sessions: they go into the page with textContent only.
 */
(function () {
  "use strict";

  const dash = window.polydeskDashboard;
  const grid = document.getElementById("grid");
  if (!dash || !grid || grid.dataset.mode !== "dashboard") return;
  const $ = (id) => document.getElementById(id);
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const { gettext, fill, STATUS_LABELS } = window.polydeskWords; // words.js
  const LABELS = Object.assign({}, STATUS_LABELS, {
    pending: gettext("Working…"), launched: gettext("Launched"), closed: gettext("Closed"),
    terminated: gettext("Ended (SIGTERM)"), killed: gettext("Ended (SIGKILL)"),
    "nothing-to-close": gettext("Not running there"),
  });

  async function call(method, path, body) {
    let response;
    try {
      response = await fetch("/api/v1" + path, {
        method,
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    } catch (error) {
      throw new Error(gettext("The Polydesk service cannot be reached. Check the network connection and try again."));
    }
    if (response.status === 401) {
      window.location.assign("/signin");
      throw new Error(gettext("You are signed out."));
    }
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (data && Array.isArray(data.results)) return data; // refused too: each result says why
    if (!response.ok) {
      throw new Error((data && data.error && data.error.message)
        || fill(gettext("The Polydesk service answered with an error ({status})."), { status: response.status }));
    }
    return data;
  }

  function notice(text) {
    const el = $("notice");
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  function results(title, rows) {
    dash.showResults(title, rows.map((r) => Object.assign({}, r, { status: LABELS[r.status] || r.status })));
  }

  const selectedTargets = () => Array.from(dash.selected).filter((id) => dash.cardOf(id))
    .map((id) => ({ id: id, user: dash.cardOf(id).dataset.user }));

  // ---------------------------------------------------------------- what was typed

  // Words as a shell would group them, and nothing more: 'single' and "double" quotes keep
  // spaces, a backslash keeps the next character; $, `, ;, | and the rest are plain characters.
  function words(text) {
    const out = [];
    let word = null, quote = null;
    for (let i = 0; i < text.length; i++) {
      const c = text[i];
      if (quote) {
        if (c === quote) quote = null;
        else if (c === "\\" && quote === '"' && i + 1 < text.length && '"\\'.includes(text[i + 1])) word += text[++i];
        else word += c;
      } else if (c === "'" || c === '"') {
        quote = c;
        if (word === null) word = "";
      } else if (c === "\\" && i + 1 < text.length) {
        word = (word || "") + text[++i];
      } else if (/\s/.test(c)) {
        if (word !== null) out.push(word);
        word = null;
      } else {
        word = (word || "") + c;
      }
    }
    if (quote) throw new Error(gettext("A quote is not closed."));
    if (word !== null) out.push(word);
    return out;
  }

  // An address (a scheme, or one absolute path) is opened whole; anything else is a program.
  function whatToLaunch(text) {
    const trimmed = text.trim();
    if (/^[a-z][a-z0-9+.-]*:/i.test(trimmed)) return { url: trimmed };
    const argv = words(trimmed);
    if (argv.length === 1 && argv[0].startsWith("/") && !/^\/(usr|bin|sbin|opt)\//.test(argv[0])) {
      return { url: argv[0] };
    }
    return argv.length ? { argv: argv } : null;
  }

  // ---------------------------------------------------------------- the Launch dialog

  const dialog = $("launch-dialog");
  const picker = $("launch-picker");
  const input = $("launch-input");
  let installed = null; // [{id, name, icon}]
  let picked = null; // the chosen installed application's id
  let opener = null;

  function pick(id) {
    picked = picked === id ? null : id;
    for (const li of picker.querySelectorAll("li")) {
      const on = li.dataset.app === picked;
      li.setAttribute("aria-selected", on ? "true" : "false");
      li.classList.toggle("picked", on);
    }
    if (picked) {
      input.value = "";
      const li = picker.querySelector(`li[data-app="${CSS.escape(picked)}"]`);
      if (li) picker.setAttribute("aria-activedescendant", li.id);
    }
  }

  async function loadInstalled() {
    if (installed) return;
    installed = await call("GET", "/apps");
    picker.replaceChildren(...installed.map((app, index) => {
      const li = document.createElement("li");
      li.id = "launch-app-" + index;
      li.dataset.app = app.id;
      li.setAttribute("role", "option");
      li.setAttribute("aria-selected", "false");
      const img = document.createElement("img");
      img.alt = "";
      img.width = 24;
      img.height = 24;
      if (app.icon) img.src = app.icon;
      const name = document.createElement("span");
      name.textContent = app.name;
      li.append(img, name);
      return li;
    }));
  }

  async function openLaunch(from) {
    opener = from || document.activeElement;
    notice("");
    const targets = selectedTargets();
    $("launch-selected-label").textContent = fill(gettext("The selected sessions ({n})"), { n: targets.length });
    $("launch-on-selected").disabled = targets.length === 0;
    (targets.length ? $("launch-on-selected") : $("launch-on-all")).checked = true;
    $("launch-error").hidden = true;
    input.value = "";
    picked = null;
    try {
      await loadInstalled();
    } catch (error) {
      $("launch-error").textContent = error.message;
      $("launch-error").hidden = false;
    }
    pick(null);
    dialog.showModal();
    $("launch-cancel").focus(); // never the button that acts
  }

  function launchBody() {
    const what = picked ? { app: picked } : whatToLaunch(input.value);
    if (!what) throw new Error(gettext("Choose an application or type what to launch."));
    const all = $("launch-on-all").checked;
    const targets = selectedTargets();
    if (!all && !targets.length) throw new Error(gettext("Select one or more sessions first, or choose all sessions."));
    return { body: Object.assign(all ? { all: true } : { ids: targets.map((t) => t.id) }, what), targets: all ? [] : targets };
  }

  async function launch(event) {
    event.preventDefault();
    let chosen;
    try {
      chosen = launchBody();
    } catch (error) {
      $("launch-error").textContent = error.message;
      $("launch-error").hidden = false;
      return;
    }
    dialog.close();
    const title = gettext("Launch");
    results(title, chosen.targets.map((t) => ({ id: t.id, user: t.user, status: "pending", reason: "" })));
    try {
      const answer = await call("POST", "/sessions/launch", chosen.body);
      results(fill(gettext("{action}: {done} done, {failed} failed"),
        { action: title, done: answer.succeeded, failed: answer.failed }), answer.results);
    } catch (error) {
      results(fill(gettext("{action}: failed"), { action: title }), chosen.targets.map((t) => ({
        id: t.id, user: t.user, status: "failed", ok: false, reason: error.message })));
    }
  }

  if (dialog) {
    $("launch-form").addEventListener("submit", launch);
    $("launch-cancel").addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => {
      const back = opener && document.contains(opener) ? opener : null;
      opener = null;
      if (back) back.focus();
    });
    input.addEventListener("input", () => { if (picked && input.value) pick(picked); });
    picker.addEventListener("click", (event) => {
      const li = event.target.closest("li[data-app]");
      if (li) pick(li.dataset.app);
    });
    // The picker as a listbox: arrows move, Space or Enter chooses (Enter in the field launches).
    picker.addEventListener("keydown", (event) => {
      const items = Array.from(picker.querySelectorAll("li"));
      if (!items.length) return;
      const current = items.findIndex((li) => li.id === picker.getAttribute("aria-activedescendant"));
      let next = current;
      if (event.key === "ArrowDown") next = Math.min(items.length - 1, current + 1);
      else if (event.key === "ArrowUp") next = Math.max(0, current - 1);
      else if (event.key === " " || event.key === "Enter") {
        event.preventDefault();
        if (current >= 0) pick(items[current].dataset.app);
        return;
      } else return;
      event.preventDefault();
      picker.setAttribute("aria-activedescendant", items[next].id);
      for (const li of items) li.classList.toggle("active", li === items[next]);
      items[next].scrollIntoView({ block: "nearest" });
    });
  }

  // ---------------------------------------------------------------- the applications panel

  const panel = $("apps-panel");
  let shownSession = null;

  async function showApps(id) {
    shownSession = id;
    const card = dash.cardOf(id);
    $("apps-title").textContent = fill(gettext("Applications of {user} (session {id})"),
      { user: card ? card.dataset.user : "", id: id });
    panel.hidden = false;
    $("apps-status").textContent = gettext("Working…");
    let apps;
    try {
      apps = await call("GET", "/sessions/" + encodeURIComponent(id) + "/apps");
    } catch (error) {
      $("apps-status").textContent = error.message;
      $("apps-body").replaceChildren();
      return;
    }
    if (shownSession !== id) return;
    $("apps-status").textContent = apps.length ? "" : gettext("No application is running there.");
    $("apps-body").replaceChildren(...apps.map((app) => {
      const tr = document.createElement("tr");
      tr.dataset.pid = app.pid === null ? "" : String(app.pid);
      const started = app.started_at ? new Date(app.started_at * 1000).toLocaleTimeString() : "—";
      let pid = app.pid === null ? "—" : String(app.pid);
      if (app.pid !== null && app.pid_source !== "server") pid += " *";
      for (const text of [app.name || "—", app.title || "—", pid, started]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      if (app.pid_source !== "server" && app.pid !== null) {
        tr.children[2].title = gettext("Only the window says so: the X server cannot confirm this process.");
      }
      const td = document.createElement("td");
      if (app.pid !== null) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "close-app";
        button.textContent = gettext("Close");
        button.setAttribute("aria-label", fill(gettext("Close {name}"), { name: app.name || app.title }));
        button.addEventListener("click", () => closeApp(id, app, button));
        td.appendChild(button);
      }
      tr.appendChild(td);
      return tr;
    }));
  }

  async function closeApp(id, app, button) {
    button.disabled = true;
    $("apps-status").textContent = fill(gettext("Closing {name}…"), { name: app.name || app.title });
    try {
      const answer = await call("POST", "/sessions/close-app", { ids: [id], pid: app.pid, start: app.start });
      const result = answer.results[0];
      $("apps-status").textContent = result.ok ? fill(gettext("{name}: {status}"), {
        name: app.name || app.title, status: LABELS[result.status] || result.status }) : result.reason;
    } catch (error) {
      $("apps-status").textContent = error.message;
    }
    const status = $("apps-status").textContent;
    await showApps(id);
    if (!$("apps-status").textContent) $("apps-status").textContent = status;
  }

  function listSelected() {
    const targets = selectedTargets();
    if (targets.length !== 1) {
      notice(gettext("Select one session to see its applications."));
      return;
    }
    notice("");
    showApps(targets[0].id).then(() => $("apps-refresh").focus());
  }

  if (panel) {
    $("apps-refresh").addEventListener("click", () => { if (shownSession) showApps(shownSession); });
    $("apps-close").addEventListener("click", () => { panel.hidden = true; shownSession = null; });
  }

  // The toolbar's Launch and the thumbnails' menu (Launch, Applications): the menu closes first.
  document.addEventListener("click", (event) => {
    const item = event.target.closest("button[data-apps]");
    if (!item) return;
    const menu = item.closest(".context-menu");
    if (menu) menu.hidden = true;
    if (item.dataset.apps === "launch" && dialog) {
      // from the thumbnails' menu, the focus goes back to the thumbnails (their roving one)
      openLaunch(menu ? grid.querySelector('.card[tabindex="0"]') : item);
    } else if (item.dataset.apps === "list" && panel) {
      listSelected();
    }
  });
})();
