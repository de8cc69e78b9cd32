/* Polydesk stations: a session's desktop in the browser, through noVNC and the daemon's bridge.
 *
 * Two places use it: the station page (a user at their own desktop, full window) and the
 * Dashboard's enlarged view (View / Take control of one session). An ES module, loaded from
 * 'self' like everything else (the Content-Security-Policy allows nothing inline). Text that
 * came from a user or the server goes into the page with textContent only.
 */
import RFB from "./novnc/core/rfb.js";

const csrf = document.querySelector('meta[name="csrf-token"]').content;
const wsBase = (window.location.protocol === "https:" ? "wss:" : "ws:") + "//" + window.location.host;
const $ = (id) => document.getElementById(id);
// Words in the page's language (words.js runs first: deferred scripts and modules run in order).
const { gettext, fill } = window.polydeskWords;
// The bridge's close reasons (stations.py, vncproxy.py) arrive in English: named here so that
// they are translated with the rest, and shown with gettext(how.reason).
void [gettext("Disconnected"), gettext("Disconnected: this session was opened elsewhere"),
  gettext("Disconnected: the session was disconnected"), gettext("Disconnected: the session has ended"),
  gettext("Disconnected: the session's screen closed"),
  gettext("Disconnected: you signed out or your role changed"), gettext("Could not connect to this session"),
  gettext("Disconnected: the session was idle for too long")];

// Close codes of the bridge (polydesk/web/vncproxy.py): the reason is a sentence for the person.
// CLOSE_SWITCHED: a projection started or stopped; connecting again shows what to show now.
const CLOSE_STATION = 4000, CLOSE_SWITCHED = 4100, CLOSE_SIGNED_OUT = 4401, CLOSE_SCREEN_GONE = 4502;
// After the daemon restarts (a service restart, an upgrade) a station comes back by itself:
// waits of 1, 2, 4, 8 s, then every 10 s, for at most 5 minutes.
const RETRY_FIRST_MS = 1000, RETRY_MAX_MS = 10000, RETRY_FOR_MS = 5 * 60 * 1000;

async function api(method, path, body) {
  let response;
  try {
    response = await fetch("/api/v1" + path, {
      method: method,
      credentials: "same-origin",
      headers: body === undefined ? {} : { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    // The browser's own words ("Failed to fetch") are in its language, not the page's: say it plainly.
    const error = new Error(gettext("The computer does not answer. Reconnecting…"));
    error.network = true;
    throw error;
  }
  if (response.status === 401) {
    window.location.assign("/signin");
    throw new Error(gettext("You are signed out."));
  }
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok) {
    const error = new Error((data && data.error && data.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

/* The bridge never passes a SetDesktopSize on to Xvnc (polydesk/web/rfbfilter.py): the daemon
 * resizes the screen itself, through RandR, so the new size comes back as a change made by the
 * server, never as the reply noVNC waits for before it asks again. Without this, the first
 * size would be the last: a window made larger later would keep a small desktop. */
class StationRFB extends RFB {
  _requestRemoteResize() {
    this._pendingRemoteResize = false;
    super._requestRemoteResize();
  }
}

/* One noVNC connection to one session in one mode. Our own WebSocket is handed to noVNC so
 * that the close code and reason the bridge sends can be read: noVNC does not pass them on. */
function attach(target, sessionId, mode, onConnect, onEnd) {
  const url = wsBase + "/api/v1/sessions/" + encodeURIComponent(sessionId) + "/vnc?mode=" + mode;
  const socket = new WebSocket(url, ["binary"]);
  let opened = false, done = false;
  socket.addEventListener("open", () => { opened = true; });
  socket.addEventListener("close", (event) => {
    if (done) return;
    done = true;
    onEnd({ code: event.code, reason: event.reason, opened: opened });
  });
  const rfb = new StationRFB(target, socket, { shared: true });
  // The user's own station sizes the session to its window (within the administrator's limits,
  // so a window outside them is scaled); a watcher's never does, and scales what it is shown.
  rfb.resizeSession = mode === "own";
  rfb.scaleViewport = true;
  rfb.viewOnly = mode === "view";
  rfb.background = "#2b3038";
  rfb.addEventListener("connect", () => onConnect(rfb));
  return {
    rfb: rfb,
    close() { done = true; rfb.disconnect(); },
  };
}

/* Follows one session on the events socket: its changes, its end, who controls it. */
function follow(sessionId, handlers) {
  let socket = null, stopped = false, retry = 500;
  function open() {
    socket = new WebSocket(wsBase + "/api/v1/events");
    socket.addEventListener("open", () => { retry = 500; });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.kind === "snapshot") {
        const session = message.sessions.find((s) => s.id === sessionId());
        if (session) handlers.changed(session);
        handlers.snapshot();
      } else if (message.session_id !== sessionId()) {
        return;
      } else if (message.kind === "session-changed" && message.session) {
        handlers.changed(message.session);
      } else if (message.kind === "session-ended") {
        handlers.ended(message.detail);
      } else if (message.kind === "control-started" || message.kind === "control-ended") {
        handlers.control(message.kind === "control-started", message.detail.by);
      }
    });
    socket.addEventListener("close", () => {
      if (stopped) return;
      window.setTimeout(open, retry);
      retry = Math.min(retry * 2, 10000);
    });
  }
  open();
  return { stop() { stopped = true; if (socket) socket.close(); } };
}

// ------------------------------------------------------------------ the station page

function stationPage(root) {
  const me = root.dataset.user;
  const home = root.dataset.home; // Dashboard users go back there; standard users sign out
  const screen = $("screen");
  let sessionId = null, viewer = null, rfb = null, leaving = null, retries = 0, blocked = false;
  let projection = null; // while this station is shown another session's screen: whose
  let switches = []; // when the bridge last said "connect again" (a projection started or stopped)
  let lostAt = null; // when the connection to the daemon was lost (null: not reconnecting)
  let deadline = null, countdown = null;
  const controllers = new Map(); // name -> how many control stations they have open

  function setState(state, text) {
    root.dataset.state = state;
    $("station-status").textContent = text;
  }

  function showEnded(title, text, canResume) {
    setState("ended", title);
    $("ended-title").textContent = title;
    $("ended-text").textContent = text;
    $("station-resume").hidden = !canResume;
    $("station-ended").hidden = false;
    $("control-banner").hidden = true;
  }

  function signOut(then) {
    leaving = leaving || "signed-out";
    if (home) { window.location.assign(home); return; }
    $("signout-then").value = then;
    $("signout-form").submit();
  }

  async function sessionToUse() {
    // A reload of this tab goes back to the session it showed (several sessions may be allowed).
    const kept = window.sessionStorage.getItem("polydesk.station");
    if (kept) {
      try {
        const session = await api("GET", "/sessions/" + encodeURIComponent(kept));
        if (session.own && session.state !== "logging-off") return session;
      } catch (e) { /* ended meanwhile: log on again */ }
    }
    const answer = await api("POST", "/sessions", { user: me }); // starts it, or resumes it
    window.sessionStorage.setItem("polydesk.station", answer.session.id);
    return answer.session;
  }

  async function start() {
    $("station-ended").hidden = true;
    setState("starting", gettext("Starting your session…"));
    let session;
    try {
      session = await sessionToUse();
    } catch (error) {
      showEnded(gettext("Your session could not start"), error.message, true);
      return;
    }
    sessionId = session.id;
    root.dataset.session = sessionId;
    changed(session);
    connect();
  }

  function connect() {
    setState("connecting", gettext("Connecting…"));
    viewer = attach(screen, sessionId, "own", (r) => {
      rfb = r;
      retries = 0;
      lostAt = null;
      rfb.viewOnly = blocked || projection !== null;
      setState("connected", statusText());
      rfb.focus();
    }, ended);
  }

  // The station's session is gone: back to the sign-in form, as MultiPoint's station does. The
  // daemon has ended this browser's sign-in already when someone else ended it; this is for the rest.
  function sessionOver() {
    window.sessionStorage.removeItem("polydesk.station");
    deadline = null;
    tick();
    if (viewer) { viewer.close(); viewer = null; }
    $("station-resume").hidden = true;
    signOut(leaving === "logoff" ? "logged-off" : "session-ended");
  }

  function retryLater() {
    if (lostAt === null) lostAt = Date.now();
    if (Date.now() - lostAt > RETRY_FOR_MS) {
      lostAt = null;
      showEnded(gettext("Could not reconnect"), gettext("The computer does not answer. Try again in a moment."),
        true);
      return;
    }
    const wait = Math.min(RETRY_FIRST_MS * 2 ** retries, RETRY_MAX_MS);
    retries += 1;
    setState("reconnecting", gettext("Reconnecting…"));
    window.setTimeout(() => { if (!leaving) connect(); }, wait);
  }

  async function ended(how) {
    viewer = null;
    rfb = null;
    if (leaving) return;
    if (how.code === CLOSE_SWITCHED) { // the teacher's screen, or our own again: at once
      // ... unless it keeps switching (a projected screen that keeps failing): then slower
      const now = Date.now();
      switches = switches.filter((t) => now - t < 10000).concat([now]);
      setState("connecting", gettext("Connecting…"));
      window.setTimeout(() => { if (!leaving && !viewer) connect(); }, switches.length > 3 ? 2000 : 50);
      return;
    }
    if (how.code === CLOSE_SIGNED_OUT) {
      // Someone else ended or disconnected the session (the sign-in has ended), or a sign-out
      const then = how.reason.includes("ended") ? "session-ended"
        : how.reason.includes("was disconnected") ? "session-disconnected" : "";
      leaving = "signed-out";
      window.location.replace("/signin" + (then ? "?then=" + then : ""));
      return;
    }
    if (how.code === CLOSE_STATION || how.code === CLOSE_SCREEN_GONE) {
      if (how.reason.includes("ended")) { sessionOver(); return; }
      showEnded(gettext(how.reason || "Disconnected"),
        gettext("Your session keeps running: resume it here or from any browser."), true);
      return;
    }
    if (how.opened) { retryLater(); return; } // the network dropped or the daemon restarts
    // Refused before it began (the browser does not see the HTTP answer): ask why.
    try {
      const session = await api("GET", "/sessions/" + encodeURIComponent(sessionId));
      if (lostAt !== null && session.state !== "logging-off") { retryLater(); return; } // still starting up
      showEnded(gettext("Could not connect"),
        session.state === "logging-off" ? gettext("Your session is logging off.") :
          gettext("Your session runs, but its screen cannot be shown here."), session.state !== "logging-off");
    } catch (error) {
      if (error.status === 404) { sessionOver(); return; }
      if (error.network || error.status >= 500) { retryLater(); return; } // the daemon is not back yet
      showEnded(gettext("Disconnected"), error.message, false);
    }
  }

  function statusText() {
    if (projection) return fill(gettext("Showing {user}'s screen"), { user: projection.source_user });
    return blocked ? gettext("Blocked") : gettext("Connected");
  }

  function changed(session) {
    blocked = session.blocked;
    projection = session.projection || null;
    root.dataset.projected = projection ? "true" : "false";
    $("cover-message").textContent = session.block_message || "";
    $("cover").hidden = !blocked || projection !== null; // a projection wins while it lasts
    const banner = $("projection-banner");
    banner.textContent = projection ? fill(gettext("Showing {user}'s screen (projected by {by})"),
      { user: projection.source_user, by: projection.by }) : "";
    banner.hidden = projection === null;
    // the bridge drops the input anyway; do not even send it
    if (rfb) rfb.viewOnly = blocked || projection !== null;
    if (root.dataset.state === "connected") $("station-status").textContent = statusText();
    deadline = session.state === "logging-off" ? session.logoff_deadline : null;
    tick();
  }

  function tick() {
    const el = $("logoff-countdown");
    if (deadline === null) {
      el.hidden = true;
      if (countdown) { window.clearInterval(countdown); countdown = null; }
      return;
    }
    const seconds = Math.max(0, Math.ceil(deadline - Date.now() / 1000));
    el.textContent = seconds > 0 ? fill(gettext("Logging off in {seconds} s: save your work"), { seconds: seconds })
      : gettext("Logging off…");
    el.hidden = false;
    if (!countdown) countdown = window.setInterval(tick, 1000);
  }

  function control(started, by) {
    const count = (controllers.get(by) || 0) + (started ? 1 : -1);
    if (count > 0) controllers.set(by, count); else controllers.delete(by);
    const banner = $("control-banner");
    banner.textContent = fill(gettext("Your session is being controlled by {users}"),
      { users: Array.from(controllers.keys()).join(", ") });
    banner.hidden = controllers.size === 0;
  }

  async function whoControls() {
    if (!sessionId) return;
    try {
      const rows = await api("GET", "/sessions/" + encodeURIComponent(sessionId) + "/connections");
      controllers.clear();
      for (const row of rows) if (row.mode === "control" && row.disconnected_at === null) control(true, row.user);
    } catch (e) { /* the banner waits for the next event */ }
  }

  follow(() => sessionId, {
    snapshot: whoControls,
    changed: changed,
    control: control,
    ended: () => { if (leaving !== "signed-out") sessionOver(); },
  });

  $("station-disconnect").addEventListener("click", () => {
    leaving = "disconnect";
    if (viewer) viewer.close();
    signOut("disconnected");
  });
  $("station-resume").addEventListener("click", () => { leaving = null; start(); });
  const dialog = $("logoff-confirm");
  $("station-logoff").addEventListener("click", () => dialog.showModal());
  $("logoff-cancel").addEventListener("click", () => dialog.close());
  $("logoff-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    dialog.close();
    leaving = "logoff";
    try {
      const answer = await api("POST", "/sessions/logoff", { own: true, wait: false });
      const failed = answer.results.find((r) => !r.ok);
      if (failed) throw new Error(failed.reason || failed.status);
      setState("logging-off", gettext("Logging off"));
    } catch (error) {
      leaving = null;
      $("station-status").textContent = fill(gettext("Log off failed: {error}"), { error: error.message });
    }
  });
  const privacyOk = $("privacy-ok");
  if (privacyOk) {
    privacyOk.addEventListener("click", () => { // privacy.js hides it and says it was read
      if (rfb) rfb.focus(); // back to the desktop: the keyboard is for it
    });
  }
  window.addEventListener("pagehide", () => { leaving = leaving || "closed"; });
  // Back to this page from the browser's history: ask the daemon again, never trust the old page
  window.addEventListener("pageshow", (event) => { if (event.persisted) window.location.reload(); });

  start();
}

// ------------------------------------------------------------------ the Dashboard's enlarged view

function enlargedView(panel) {
  const screen = $("enlarge-screen");
  let viewer = null, current = null;

  function setState(state, text) {
    panel.dataset.state = state;
    $("enlarge-status").textContent = text;
  }

  function open(target) {
    if (viewer) viewer.close();
    current = target;
    panel.hidden = false;
    panel.dataset.session = target.id;
    panel.dataset.mode = target.mode;
    $("enlarge-title").textContent = target.user;
    $("enlarge-view").setAttribute("aria-pressed", target.mode === "view" ? "true" : "false");
    $("enlarge-control").setAttribute("aria-pressed", target.mode === "control" ? "true" : "false");
    setState("connecting", gettext("Connecting…"));
    viewer = attach(screen, target.id, target.mode, (rfb) => {
      setState("connected", target.mode === "control"
        ? gettext("In control: your keyboard and mouse drive this session")
        : gettext("Viewing (input is not sent)"));
      if (target.mode === "control") rfb.focus();
    }, (how) => {
      viewer = null;
      setState("ended", gettext(how.reason || (how.opened ? "Disconnected" : "Could not connect to this session")));
    });
  }

  function close() {
    if (viewer) viewer.close();
    viewer = null;
    current = null;
    panel.hidden = true;
    panel.dataset.state = "closed";
  }

  document.addEventListener("polydesk:station", (event) => {
    window.polydeskStation = null;
    open(event.detail);
  });
  if (window.polydeskStation) { // asked for while this module was still loading
    open(window.polydeskStation);
    window.polydeskStation = null;
  }
  $("enlarge-view").addEventListener("click", () => { if (current) open({ ...current, mode: "view" }); });
  $("enlarge-control").addEventListener("click", () => { if (current) open({ ...current, mode: "control" }); });
  $("enlarge-close").addEventListener("click", close);
  document.addEventListener("polydesk:session-ended", (event) => {
    if (current && event.detail.id === current.id) {
      if (viewer) viewer.close();
      viewer = null;
      setState("ended", gettext("The session has ended"));
    }
  });
}

const stationRoot = $("station");
if (stationRoot) stationPage(stationRoot);
const panel = $("enlarge");
if (panel) enlargedView(panel);
