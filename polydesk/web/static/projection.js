/* The Dashboard's Project menu, as MultiPoint names its items, and the Stop button that stays
 * in the toolbar while anything is projected; the cards of projection targets are marked.
 *
 * Acts through window.polydeskDashboard (dashboard.js): the selection, the confirmation
 * dialog, an action with its results (perform). Text from users goes into the page with
 * textContent only.
 */
(function () {
  "use strict";

  const dash = window.polydeskDashboard;
  if (!dash) return;
  const { gettext, fill } = window.polydeskWords;
  const stopButton = document.getElementById("stop-projecting");

  function showStop() {
    if (stopButton) stopButton.hidden = !dash.cards().some((card) => card.dataset.projection);
  }

  // A card's session changed: mark it while its station shows another session's screen.
  document.addEventListener("polydesk:card", (event) => {
    const { card, session } = event.detail;
    const badge = card.querySelector(".projection-badge");
    if (session.projection) {
      card.dataset.projection = session.projection.source;
      badge.textContent = fill(gettext("Showing {user}'s screen"), { user: session.projection.source_user });
    } else {
      delete card.dataset.projection;
    }
    card.classList.toggle("is-projected", Boolean(session.projection));
    badge.hidden = !session.projection;
    showStop();
  });
  document.addEventListener("polydesk:card-removed", showStop);

  const userOf = (id) => (dash.cardOf(id) ? dash.cardOf(id).dataset.user : id);

  // What each item projects (source: a session id, or null for the caller's own) and onto what.
  function plan(item) {
    const ids = dash.selectedIds();
    if (item === "mine-to-selected") {
      if (ids.length === 0) return gettext("Select the desktops to project to first: click their thumbnails.");
      return { title: gettext("Project your desktop to selected desktops"), body: { ids: ids },
        targets: ids.map((id) => ({ id: id, user: userOf(id) })) };
    }
    if (item === "mine-to-all") {
      return { title: gettext("Project your desktop to all desktops"), body: { all: true }, targets: null };
    }
    if (ids.length !== 1) return gettext("Select the one desktop to project first: click its thumbnail.");
    return { title: gettext("Project the selected desktop to all desktops"),
      body: { source: ids[0], all: true }, targets: null, source: userOf(ids[0]) };
  }

  async function project(item, opener) {
    const chosen = plan(item);
    if (typeof chosen === "string") { dash.notice(chosen, true); return; }
    let targets = chosen.targets;
    try {
      if (targets === null) { // "all": the server says which it may project to (what-if)
        const preview = await dash.post("project", Object.assign({ what_if: true }, chosen.body));
        targets = preview.results.filter((r) => r.ok).map((r) => ({ id: r.id, user: r.user }));
      }
    } catch (error) {
      dash.notice(error.message);
      return;
    }
    if (targets.length === 0) { dash.notice(gettext("There is no other desktop to project to.")); return; }
    const what = chosen.source ? fill(gettext("{user}'s screen is shown, view-only, at their stations."),
      { user: chosen.source }) : gettext("Your screen is shown, view-only, at their stations.");
    const ok = await dash.confirm({ title: chosen.title, verb: gettext("Project"), fields: [],
      one: gettext("Project to 1 desktop."), many: gettext("Project to {n} desktops."),
      text: what + " " + gettext("Their own desktops keep running until you stop.") }, targets, opener);
    if (!ok) return;
    await dash.perform(chosen.title, "project", chosen.body, targets);
  }



  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-project]");
    if (!button) return;
    event.stopPropagation();
    const opener = button.closest(".dropdown") ? document.getElementById("project-button") : button;
    dash.closeMenus();
    dash.notice("");
    if (button.dataset.project === "stop") {
      // Everything the caller may stop: nothing is lost by it, so nothing to confirm.
      const targets = dash.cards().filter((c) => c.dataset.projection)
        .map((c) => ({ id: c.dataset.id, user: c.dataset.user }));
      dash.perform(gettext("Stop projecting"), "project/stop", {}, targets);
    } else {
      project(button.dataset.project, opener);
    }
  });

  showStop();
})();
