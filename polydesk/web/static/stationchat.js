/* Chat at the station page (docs/chat.md): a panel that opens when the teacher writes, a button
 * to write to the teacher, and Raise hand. The words come from the events socket (only this
 * session's user and who may chat with it are told, web/routes/events.py) and from
 * GET /api/v1/sessions/{id}/chat; they go into the page with textContent only, so markup in a
 * message is shown as the characters typed. Loaded after station.js, which names the session
 * it shows on #station's data-session.
 */
(function () {
  "use strict";

  const { gettext, fill } = window.polydeskWords;
  const $ = (id) => document.getElementById(id);
  const root = $("station"), panel = $("chat-panel"), log = $("chat-log"), text = $("chat-text");
  const handButton = $("station-hand");
  if (!root || !panel) return;
  const wsBase = (window.location.protocol === "https:" ? "wss:" : "ws:") + "//" + window.location.host;
  let sessionId = null, last = 0, socket = null, retry = 500, unread = 0;

  const api = window.polydeskApi.call; // client.js


  function time(epoch) {
    return new Date(epoch * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function add(message) {
    if (message.seq <= last) return;
    last = message.seq;
    const item = document.createElement("li");
    item.className = "chat-message " + (message.from === "student" ? "mine" : "theirs");
    const who = document.createElement("span");
    who.className = "chat-who";
    who.textContent = (message.from === "student" ? gettext("You") : message.sender) + " · " + time(message.time);
    const body = document.createElement("p");
    body.className = "chat-text";
    body.textContent = message.text;
    item.append(who, body);
    log.append(item);
    log.scrollTop = log.scrollHeight;
    if (message.from === "teacher") {
      if (panel.hidden) unread += 1;
      open(false);
    }
    showUnread();
  }

  function showUnread() {
    const button = $("station-chat");
    button.textContent = unread ? fill(gettext("Chat ({n})"), { n: unread }) : gettext("Chat");
  }

  function open(focus) {
    panel.hidden = false;
    if (focus) { unread = 0; showUnread(); text.focus(); }
  }

  async function history() {
    try {
      const answer = await api("GET", "/sessions/" + encodeURIComponent(sessionId) + "/chat?after=" + last);
      answer.messages.forEach(add);
    } catch (e) { /* the events socket brings what comes next */ }
  }

  function showHand(raisedAt) {
    handButton.dataset.raised = raisedAt ? "true" : "false";
    handButton.setAttribute("aria-pressed", raisedAt ? "true" : "false");
    handButton.textContent = raisedAt ? gettext("Lower hand") : gettext("Raise hand");
  }

  function listen() {
    socket = new WebSocket(wsBase + "/api/v1/events");
    socket.addEventListener("open", () => { retry = 500; history(); });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.kind === "snapshot") {
        const own = message.sessions.find((s) => s.id === sessionId);
        if (own) showHand(own.hand_raised_at);
      } else if (message.session_id !== sessionId) {
        return;
      } else if (message.kind === "chat") {
        add(message.detail);
      } else if (message.kind === "session-changed" && message.session) {
        showHand(message.session.hand_raised_at);
      }
    });
    socket.addEventListener("close", () => {
      window.setTimeout(listen, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }

  $("chat-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const words = text.value;
    if (!words.trim() || !sessionId) return;
    $("chat-error").textContent = "";
    try {
      add(await api("POST", "/sessions/" + encodeURIComponent(sessionId) + "/chat", { text: words }));
      text.value = "";
    } catch (error) {
      $("chat-error").textContent = error.message;
    }
  });
  text.addEventListener("keydown", (event) => { // Enter sends; Shift+Enter is a new line
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); $("chat-form").requestSubmit(); }
  });
  $("station-chat").addEventListener("click", () => {
    if (panel.hidden) open(true); else panel.hidden = true;
  });
  $("chat-close").addEventListener("click", () => { panel.hidden = true; });
  handButton.addEventListener("click", async () => {
    if (!sessionId) return;
    const raised = handButton.dataset.raised === "true";
    try {
      const session = await api("POST", "/sessions/" + encodeURIComponent(sessionId) + "/hand" + (raised ? "/lower" : ""));
      showHand(session.hand_raised_at);
    } catch (error) {
      open(false);
      $("chat-error").textContent = error.message;
    }
  });

  // station.js names the session once it has started or resumed it.
  const started = window.setInterval(() => {
    if (!root.dataset.session) return;
    window.clearInterval(started);
    sessionId = root.dataset.session;
    handButton.disabled = false;
    $("station-chat").disabled = false;
    listen();
  }, 200);
})();
