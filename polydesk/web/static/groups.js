/* Polydesk Dashboard: groups of students, the custom order of the cards, and the stations.
 *
 * Beside dashboard.js, which asks this file (window.polydeskView) which cards a group hides and
 * where the custom order puts a card. Groups are shared by the Dashboard's users, the order is
 * each teacher's own; both live in the daemon's state database (/api/v1/groups, /card-order).
 * "Show all stations" lists every station, empty ones too, as MultiPoint does (/api/v1/stations).
 * Names come from people (groups, stations, users): they go into the page with textContent only.
 */
(function () {
  "use strict";

  const dash = window.polydeskDashboard;
  const grid = document.getElementById("grid");
  if (!dash || !grid || grid.dataset.mode !== "dashboard") return;
  const $ = (id) => document.getElementById(id);
  const { gettext, fill } = window.polydeskWords; // words.js
  const isAdmin = grid.dataset.callerRole === "admin";

  let groups = []; // [{name, members}]
  let chosen = localStorage.getItem("polydesk.group") || "";
  let order = []; // user names, the teacher's custom order

  const call = window.polydeskApi.call; // client.js

  function notice(text) {
    const el = $("notice");
    if (!el) return;
    el.textContent = text;
    el.hidden = !text;
  }

  // ---------------------------------------------------------------- what dashboard.js asks

  const members = () => {
    const group = groups.find((g) => g.name === chosen);
    return group ? new Set(group.members) : null;
  };
  window.polydeskView = {
    hides(card) {
      const set = members();
      return set !== null && !set.has(card.dataset.user);
    },
    rank(card) {
      const i = order.indexOf(card.dataset.user);
      return i < 0 ? order.length : i;
    },
  };

  // ---------------------------------------------------------------- groups

  function renderGroups() {
    const select = $("group");
    while (select.options.length > 1) select.remove(1);
    for (const group of groups) {
      const option = document.createElement("option");
      option.value = group.name;
      option.textContent = fill(gettext("Group: {name}"), { name: group.name });
      select.appendChild(option);
    }
    if (!groups.some((g) => g.name === chosen)) chosen = "";
    select.value = chosen;
    $("group-delete").hidden = chosen === "";
    dash.applyView();
  }

  async function loadGroups() {
    groups = await call("GET", "/groups");
    renderGroups();
  }

  $("group").addEventListener("change", () => {
    chosen = $("group").value;
    localStorage.setItem("polydesk.group", chosen);
    renderGroups();
  });

  // One small dialog asks for a name (a group's, a station's) or confirms a deletion.
  function askName(title, text, value, withInput, save) {
    const dialog = $("name-dialog");
    const input = $("name-input");
    $("name-title").textContent = title;
    $("name-text").textContent = text;
    input.value = value;
    input.closest(".field").hidden = !withInput;
    $("name-error").hidden = true;
    $("name-ok").textContent = withInput ? gettext("Save") : gettext("Delete");
    dialog.showModal();
    (withInput ? input : $("name-cancel")).focus();
    $("name-form").onsubmit = async (event) => {
      event.preventDefault();
      try {
        await save(input.value.trim());
        dialog.close();
      } catch (error) {
        $("name-error").textContent = error.message;
        $("name-error").hidden = false;
      }
    };
  }
  $("name-cancel").addEventListener("click", () => $("name-dialog").close());

  function selectedUsers() {
    const users = [];
    for (const id of dash.selected) {
      const card = dash.cardOf(id);
      if (card && !users.includes(card.dataset.user)) users.push(card.dataset.user);
    }
    return users;
  }

  $("group-save").addEventListener("click", () => {
    const users = selectedUsers();
    if (users.length === 0) {
      notice(gettext("Select the sessions of the students for the group first."));
      return;
    }
    notice("");
    askName(gettext("Save group"), fill(gettext("Members: {users}"), { users: users.join(", ") }), chosen, true,
      async (name) => {
        if (!name) throw new Error(gettext("Give the group a name."));
        await call("PUT", "/groups/" + encodeURIComponent(name), { members: users });
        chosen = name;
        localStorage.setItem("polydesk.group", chosen);
        await loadGroups();
      });
  });

  $("group-delete").addEventListener("click", () => {
    const name = chosen;
    askName(gettext("Delete group"),
      fill(gettext("Delete the group {name}? Its students' sessions are not touched."), { name }), name, false,
      async () => {
        await call("DELETE", "/groups/" + encodeURIComponent(name));
        chosen = "";
        localStorage.setItem("polydesk.group", "");
        await loadGroups();
      });
  });

  // ---------------------------------------------------------------- the custom order

  const custom = () => dash.view.sort === "custom";

  function showOrderTools() {
    $("order-tools").hidden = !custom();
    for (const card of grid.querySelectorAll(".card")) card.draggable = custom();
  }
  $("sort").addEventListener("change", showOrderTools);

  // The order as the grid shows it now, with the users not on the page kept after them.
  function currentOrder() {
    const shown = Array.from(grid.querySelectorAll(".card")).map((c) => c.dataset.user);
    const users = Array.from(new Set(shown));
    return users.concat(order.filter((u) => !users.includes(u)));
  }

  async function saveOrder(users) {
    order = users;
    dash.applyView();
    try {
      order = await call("PUT", "/card-order", { users });
    } catch (error) {
      notice(error.message);
    }
  }

  function move(step) {
    const ids = Array.from(dash.selected);
    if (ids.length !== 1) {
      notice(gettext("Select one session to move."));
      return;
    }
    notice("");
    const card = dash.cardOf(ids[0]);
    const shown = Array.from(grid.querySelectorAll(".card")).filter((c) => !c.hidden);
    const other = shown[shown.indexOf(card) + step];
    if (!card || !other) return;
    const users = currentOrder();
    const a = users.indexOf(card.dataset.user), b = users.indexOf(other.dataset.user);
    users.splice(a, 1);
    users.splice(b, 0, card.dataset.user);
    saveOrder(users).then(() => card.focus());
  }
  $("move-earlier").addEventListener("click", () => move(-1));
  $("move-later").addEventListener("click", () => move(1));

  // Dragging a card onto another puts it there (the buttons above do the same from the keyboard).
  let dragged = null;
  grid.addEventListener("dragstart", (event) => {
    const card = event.target.closest && event.target.closest(".card");
    if (!custom() || !card) return;
    dragged = card.dataset.user;
    event.dataTransfer.effectAllowed = "move";
  });
  grid.addEventListener("dragover", (event) => { if (dragged !== null) event.preventDefault(); });
  grid.addEventListener("drop", (event) => {
    const card = event.target.closest && event.target.closest(".card");
    if (dragged === null || !card) return;
    event.preventDefault();
    const users = currentOrder().filter((u) => u !== dragged);
    users.splice(users.indexOf(card.dataset.user), 0, dragged);
    dragged = null;
    saveOrder(users);
  });
  grid.addEventListener("dragend", () => { dragged = null; });
  document.body.addEventListener("htmx:afterSwap", showOrderTools); // a new card: draggable too

  // ---------------------------------------------------------------- stations

  let stationTimer = null;

  function clock(epoch) {
    const when = new Date(epoch * 1000);
    return when.toLocaleTimeString(document.documentElement.lang, { hour: "2-digit", minute: "2-digit" });
  }

  function stationTile(station) {
    const tile = document.createElement("article");
    tile.className = "card station-card" + (station.session_id ? "" : " empty-station");
    tile.dataset.stationId = station.id;
    const screen = document.createElement("div");
    screen.className = "screen";
    const inside = document.createElement("div");
    inside.className = "noscreen";
    inside.textContent = station.session_id ? station.user : gettext("No session");
    screen.appendChild(inside);
    const footer = document.createElement("footer");
    const name = document.createElement("span");
    name.className = "station-name";
    name.textContent = station.name;
    const used = document.createElement("span");
    used.className = "last-use";
    used.textContent = station.last_used
      ? fill(gettext("last used {time} by {user}"), { time: clock(station.last_used), user: station.last_user || "-" })
      : gettext("never used");
    footer.append(name, used);
    if (isAdmin && station.kind === "browser") {
      const rename = document.createElement("button");
      rename.type = "button";
      rename.className = "rename";
      rename.textContent = gettext("Rename");
      rename.addEventListener("click", () => askName(gettext("Rename station"), station.name, station.name, true,
        async (value) => {
          await call("PATCH", "/stations/" + encodeURIComponent(station.id), { name: value });
          await loadStations();
        }));
      footer.appendChild(rename);
    }
    tile.append(screen, footer);
    return tile;
  }

  async function loadStations() {
    const list = $("station-list");
    try {
      const stations = await call("GET", "/stations");
      list.replaceChildren(...stations.map(stationTile));
    } catch (error) {
      notice(error.message);
    }
  }

  function showStations() {
    const on = $("show-stations").checked;
    localStorage.setItem("polydesk.stations", on ? "1" : "");
    $("stations").hidden = !on;
    clearInterval(stationTimer);
    stationTimer = null;
    if (on) {
      loadStations();
      stationTimer = setInterval(loadStations, 5000);
    }
  }
  // (a click made before this script ran counts too)
  $("show-stations").checked = $("show-stations").checked || localStorage.getItem("polydesk.stations") === "1";
  $("show-stations").addEventListener("change", showStations);

  // ---------------------------------------------------------------- start

  showOrderTools();
  showStations();
  Promise.all([loadGroups(), call("GET", "/card-order").then((users) => { order = users; })])
    .then(() => dash.applyView())
    .catch((error) => notice(error.message));
})();
