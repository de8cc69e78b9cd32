/* The Dashboard's side of chat (docs/chat.md): a raised hand marks its thumbnail (a badge, a
 * pulsing frame, the count in the page's title); a chat panel per session, opened from the
 * thumbnails' right-click menu or the card's badges, with unread counts and predefined replies.
 *
 * Acts through window.polydeskDashboard (dashboard.js) and its events: polydesk:card on every
 * card update, polydesk:event for every message of the events socket. Text from users goes into
 * the page with textContent only: markup in a message is shown as the characters typed.
 */
(function () {
  "use strict";

  const dash = window.polydeskDashboard;
  const template = document.getElementById("chat-template");
  if (!dash || !template) return;
  const { gettext, fill } = window.polydeskWords;
  const dock = document.getElementById("chat-dock");
  const baseTitle = document.title;
  const panels = new Map(); // session id -> { panel, last }
  const unread = new Map(); // session id -> messages from its user not read here

  const call = window.polydeskApi.call; // client.js

  const chatPath = (id) => "/sessions/" + encodeURIComponent(id) + "/chat";

  // ---------------------------------------------------------------- the cards

  function badge(card, name, label) {
    let element = card.querySelector("." + name);
    if (!element) {
      element = document.createElement("button");
      element.type = "button";
      element.className = "badge " + name;
      element.hidden = true;
      element.addEventListener("click", (event) => { event.stopPropagation(); openPanel(card.dataset.id); });
      card.querySelector(".screen").append(element);
    }
    element.title = label;
    return element;
  }

  function showUnread(id) {
    const card = dash.cardOf(id);
    if (!card) return;
    const n = unread.get(id) || 0;
    const element = badge(card, "chat-badge", gettext("Unread chat messages: open the chat"));
    element.textContent = fill(gettext("Chat {n}"), { n: n });
    element.hidden = n === 0;
  }

  function showTitle() {
    const hands = dash.cards().filter((c) => c.dataset.hand).length;
    document.title = hands ? fill(gettext("({n} ✋) {title}"), { n: hands, title: baseTitle }) : baseTitle;
  }

  // A card's session changed (and, once, every card as the page had it before this script ran).
  function mark(card, session) {
    const element = badge(card, "hand-badge", gettext("Raised hand: open the chat"));
    element.textContent = "✋ " + gettext("Hand raised");
    element.hidden = !session.hand_raised_at;
    if (session.hand_raised_at) card.dataset.hand = String(session.hand_raised_at);
    else delete card.dataset.hand;
    card.classList.toggle("has-hand", Boolean(session.hand_raised_at));
    const open = panels.get(session.id);
    if (open) open.panel.querySelector(".chat-lower").hidden = !session.hand_raised_at;
    showUnread(session.id);
    showTitle();
  }
  document.addEventListener("polydesk:card", (event) => mark(event.detail.card, event.detail.session));
  for (const card of dash.cards()) {
    mark(card, { id: card.dataset.id, hand_raised_at: card.dataset.hand ? Number(card.dataset.hand) : null });
  }
  document.addEventListener("polydesk:card-removed", (event) => {
    unread.delete(event.detail.id);
    const open = panels.get(event.detail.id);
    if (open) { open.panel.remove(); panels.delete(event.detail.id); }
    showTitle();
  });

  // ---------------------------------------------------------------- the panels

  function add(id, message) {
    const open = panels.get(id);
    if (!open || message.seq <= open.last) return;
    open.last = message.seq;
    const item = document.createElement("li");
    item.className = "chat-message " + (message.from === "teacher" ? "mine" : "theirs");
    const who = document.createElement("span");
    who.className = "chat-who";
    who.textContent = message.sender + " · "
      + new Date(message.time * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    const text = document.createElement("p");
    text.className = "chat-text";
    text.textContent = message.text;
    item.append(who, text);
    const log = open.panel.querySelector(".chat-log");
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  async function send(id, words) {
    const open = panels.get(id);
    const error = open.panel.querySelector(".chat-error");
    error.textContent = "";
    try {
      add(id, await call("POST", chatPath(id), { text: words }));
      return true;
    } catch (e) {
      error.textContent = e.message;
      return false;
    }
  }

  async function openPanel(id) {
    const card = dash.cardOf(id);
    if (!card) return;
    let open = panels.get(id);
    if (!open) {
      const panel = template.content.firstElementChild.cloneNode(true);
      panel.dataset.session = id;
      panel.querySelector(".chat-title").textContent = fill(gettext("Chat with {user}"), { user: card.dataset.user });
      panel.querySelector(".chat-lower").hidden = !card.dataset.hand;
      open = { panel: panel, last: 0 };
      panels.set(id, open);
      dock.append(panel);
      const text = panel.querySelector("textarea");
      panel.querySelector("form").addEventListener("submit", async (event) => {
        event.preventDefault();
        if (text.value.trim() && await send(id, text.value)) text.value = "";
      });
      text.addEventListener("keydown", (event) => { // Enter sends; Shift+Enter is a new line
        if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); panel.querySelector("form").requestSubmit(); }
      });
      panel.querySelectorAll("[data-reply]").forEach((button) => {
        button.addEventListener("click", () => send(id, button.dataset.reply));
      });
      panel.querySelector(".chat-close").addEventListener("click", () => { panel.remove(); panels.delete(id); });
      panel.querySelector(".chat-lower").addEventListener("click", async () => {
        try { await call("POST", "/sessions/" + encodeURIComponent(id) + "/hand/lower"); }
        catch (e) { panel.querySelector(".chat-error").textContent = e.message; }
      });
    }
    try {
      const answer = await call("GET", chatPath(id) + "?after=" + open.last); // read now
      answer.messages.forEach((m) => add(id, m));
      unread.delete(id);
      showUnread(id);
    } catch (e) {
      open.panel.querySelector(".chat-error").textContent = e.message;
    }
    open.panel.querySelector("textarea").focus();
  }

  document.addEventListener("polydesk:event", (event) => {
    const message = event.detail;
    if (message.kind !== "chat") return;
    const id = message.session_id;
    if (panels.has(id)) {
      add(id, message.detail);
      if (message.detail.from === "student") call("GET", chatPath(id) + "?after=" + (message.detail.seq - 1)).catch(() => {});
    } else if (message.detail.from === "student") {
      unread.set(id, (unread.get(id) || 0) + 1);
      showUnread(id);
    }
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-chat]");
    if (!button) return;
    event.stopPropagation();
    dash.closeMenus();
    const ids = dash.selectedIds();
    if (ids.length === 0) { dash.notice(gettext("Select the session to chat with first: click its thumbnail."), true); return; }
    ids.slice(0, 4).forEach(openPanel); // a panel each, a few at most
  });

  // What changed before this script ran (the events socket may have been quicker), and what
  // was written while this page was closed.
  call("GET", "/sessions").then((sessions) => {
    for (const session of sessions) if (dash.cardOf(session.id)) mark(dash.cardOf(session.id), session);
  }).catch(() => {});
  call("GET", "/chat/unread").then((counts) => {
    for (const [id, n] of Object.entries(counts)) { unread.set(id, n); showUnread(id); }
  }).catch(() => {});
})();
