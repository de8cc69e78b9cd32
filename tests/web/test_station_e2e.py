"""Stations end to end: real headless Chromium (noVNC), a real daemon, real Xvnc sessions, real passwords.

Issue 4's "done when": a standard user signs in and their desktop appears; what they type runs in
it; closing the page disconnects, signing in again resumes the same desktop; a second browser
takes the session over and the first is told; Disconnect and Log off from the station's toolbar;
a Dashboard user's View sends nothing, Take control does, with a banner on the user's station;
a blocked station shows the message and its keys do not arrive.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.harness import Daemon, wait_for
from tests.users import TestUser, user_pids
from tests.web.webclient import new_page, sign_in

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "station.png"
CONNECT_MS = 30_000

# The session's screen as noVNC drew it in its canvas (the framebuffer, before any scaling):
# luma sampled every 4 pixels, its spread, and the share of white (the xterm on a black root).
CANVAS_JS = """(selector) => {
  const c = document.querySelector(selector);
  if (!c || c.width < 100) return null;
  const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  const lumas = [];
  let sum = 0, sum2 = 0, white = 0;
  for (let y = 0; y < c.height; y += 4) {
    for (let x = 0; x < c.width; x += 4) {
      const i = (y * c.width + x) * 4;
      const l = 0.3 * d[i] + 0.59 * d[i + 1] + 0.11 * d[i + 2];
      lumas.push(Math.round(l));
      sum += l; sum2 += l * l;
      if (l > 200) white += 1;
    }
  }
  const n = lumas.length;
  return {width: c.width, height: c.height, std: Math.sqrt(Math.max(0, sum2 / n - (sum / n) ** 2)),
          white: white / n, lumas: lumas};
}"""



def screen(page: Page, selector: str = "#screen canvas") -> dict[str, Any] | None:
    result: dict[str, Any] | None = page.evaluate(CANVAS_JS, selector)
    return result


def shows_xterm(page: Page, selector: str = "#screen canvas") -> dict[str, Any] | None:
    """The picture once it shows a desktop with a (white) xterm on it, else None."""
    shot = screen(page, selector)
    return shot if shot and shot["std"] > 8 and 0.02 < shot["white"] < 0.8 else None


def difference(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Mean absolute luma difference between two pictures of the same screen."""
    assert len(a["lumas"]) == len(b["lumas"])
    return sum(abs(x - y) for x, y in zip(a["lumas"], b["lumas"], strict=True)) / len(a["lumas"])


def connected(page: Page) -> None:
    expect(page.locator("#station")).to_have_attribute("data-state", "connected", timeout=CONNECT_MS)


def session_of(daemon: Daemon, user: TestUser) -> dict[str, Any]:
    sessions = [s for s in daemon.sessions() if s["user"] == user.name]
    assert len(sessions) == 1, sessions
    return sessions[0]


def test_user_signs_in_works_disconnects_resumes_and_is_taken_over(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser], browser: Browser
) -> None:
    daemon = daemon_factory("logoff_grace = 4")
    ana = make_user("ana")

    # signing in lands on the desktop: the session starts, and its xterm appears in the page
    first = new_page(browser)
    sign_in(first, daemon, ana)
    connected(first)
    expect(first.locator("#privacy-notice")).to_be_visible()
    first.click("#privacy-ok")
    wait_for(lambda: shows_xterm(first), what="the desktop with its xterm", timeout=30)
    session = session_of(daemon, ana)
    assert session["state"] == "active"
    assert re.fullmatch(r"127\.0\.0\.1 HeadlessChrome \d+ on Linux", session["client"]), session["client"]

    # what they type runs in their session, as them
    before = screen(first)
    first.keyboard.type("echo polydesk-$((6 * 7)) && touch from-the-browser\n")
    made = Path(ana.home) / "from-the-browser"
    wait_for(made.exists, what="the file the typed command makes", timeout=30)
    assert made.stat().st_uid == ana.uid
    typed = wait_for(lambda: (s := screen(first)) and difference(s, before) > 0.05 and s,
                     what="the xterm to show the command", timeout=30)
    time.sleep(0.5)
    typed = screen(first)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    first.screenshot(path=str(SCREENSHOT))  # the README's picture of a station
    pids = set(user_pids(ana.uid))

    # closing the page disconnects the session within seconds; it keeps running
    first.close()
    wait_for(lambda: session_of(daemon, ana)["state"] == "disconnected", timeout=10,
             what="the session to be disconnected")
    assert session_of(daemon, ana)["client"] is None
    assert pids <= set(user_pids(ana.uid))

    # signing in again resumes the same session: same processes, the same xterm with its history
    second = new_page(browser)
    sign_in(second, daemon, ana)
    connected(second)
    resumed = wait_for(lambda: shows_xterm(second), what="the resumed desktop", timeout=30)
    assert typed is not None
    wait_for(lambda: difference(s := screen(second), typed) < 1.0 and s,  # type: ignore[arg-type]
             what="the same screen as before the disconnect", timeout=30)
    assert resumed["width"] == typed["width"]
    assert session_of(daemon, ana)["id"] == session["id"] and session_of(daemon, ana)["state"] == "active"
    assert pids <= set(user_pids(ana.uid))

    # a second browser signing in takes the session over; the first one is told
    third = new_page(browser)
    sign_in(third, daemon, ana)
    connected(third)
    expect(second.locator("#station")).to_have_attribute("data-state", "ended")
    expect(second.locator("#ended-title")).to_have_text("Disconnected: this session was opened elsewhere")
    expect(second.locator("#station-resume")).to_be_visible()
    wait_for(lambda: shows_xterm(third), what="the desktop in the third browser", timeout=30)
    assert session_of(daemon, ana)["id"] == session["id"]

    # Disconnect in the toolbar: back to the log-on page, the session keeps running
    third.click("#station-disconnect")
    expect(third).to_have_url(daemon.url + "/signin?then=disconnected")
    expect(third.locator("#farewell")).to_contain_text("Your session keeps running")
    wait_for(lambda: session_of(daemon, ana)["state"] == "disconnected", timeout=10,
             what="the session to be disconnected")

    # Log off in the toolbar: asks, then ends the session at once (a user's own log-off has no
    # grace period, issue 14.5: the windows are still asked to close first)
    fourth = new_page(browser)
    sign_in(fourth, daemon, ana)
    connected(fourth)
    fourth.click("#station-logoff")
    expect(fourth.locator("#logoff-confirm")).to_be_visible()
    fourth.click("#logoff-ok")
    expect(fourth).to_have_url(daemon.url + "/signin?then=logged-off", timeout=60_000)
    expect(fourth.locator("#farewell")).to_have_text("You are logged off.")
    assert daemon.sessions() == []
    wait_for(lambda: user_pids(ana.uid) == [], timeout=10, what="every process of the session to end")
    for page in (second, third, fourth):
        assert page.errors == [], page.errors  # type: ignore[attr-defined]


def test_dashboard_views_takes_control_blocks_and_messages(
    make_user: Callable[..., TestUser], daemon: Daemon, browser: Browser
) -> None:
    teacher, ana = make_user("tch", "dashboard"), make_user("ana")
    desk = new_page(browser)
    sign_in(desk, daemon, ana)
    connected(desk)
    wait_for(lambda: shows_xterm(desk), what="ana's desktop", timeout=30)
    a = session_of(daemon, ana)["id"]
    home = Path(ana.home)

    dash = new_page(browser)
    sign_in(dash, daemon, teacher)
    card = dash.locator(f"#card-{a}")
    expect(card.locator(".client")).to_contain_text("HeadlessChrome")  # the CLIENT of the session

    # Enlarge: ana's screen, large and live, in the Dashboard page; keys typed there go nowhere
    card.click()
    dash.click("#toolbar [data-station=view]")
    panel = dash.locator("#enlarge")
    expect(panel).to_have_attribute("data-state", "connected", timeout=CONNECT_MS)
    expect(dash.locator("#enlarge-title")).to_have_text(ana.name)
    wait_for(lambda: shows_xterm(dash, "#enlarge-screen canvas"), what="the enlarged desktop", timeout=30)
    dash.locator("#enlarge-screen canvas").click()
    dash.keyboard.type("touch from-a-viewer\n")
    time.sleep(1.5)
    assert not (home / "from-a-viewer").exists()
    expect(desk.locator("#control-banner")).to_be_hidden()

    # Take control: the teacher's keys arrive; ana's station says who controls it
    dash.click("#enlarge-control")
    expect(panel).to_have_attribute("data-mode", "control")
    expect(panel).to_have_attribute("data-state", "connected", timeout=CONNECT_MS)
    expect(desk.locator("#control-banner")).to_have_text(
        f"Your session is being controlled by {teacher.name}")
    dash.keyboard.type("touch from-the-teacher\n")
    wait_for((home / "from-the-teacher").exists, what="the controller's command", timeout=30)
    dash.click("#enlarge-view")  # back to view only: control ends, the banner goes
    expect(panel).to_have_attribute("data-state", "connected", timeout=CONNECT_MS)
    expect(desk.locator("#control-banner")).to_be_hidden()
    dash.click("#enlarge-close")
    expect(panel).to_be_hidden()

    # Block: ana's station is covered with the message, and her keys do not arrive
    card.click()
    dash.click("#toolbar [data-action=block]")
    dash.fill("#message", "Eyes on the board")
    dash.click("#confirm-ok")
    expect(desk.locator("#cover")).to_be_visible()
    expect(desk.locator("#cover-message")).to_have_text("Eyes on the board")
    desk.keyboard.type("touch while-blocked\n")
    time.sleep(1.5)
    assert not (home / "while-blocked").exists()
    dash.click("#toolbar [data-action=unblock]")
    dash.click("#confirm-ok")
    expect(desk.locator("#cover")).to_be_hidden()
    desk.keyboard.type("touch after-unblock\n")
    wait_for((home / "after-unblock").exists, what="ana's command after the unblock", timeout=30)
    assert not (home / "while-blocked").exists()

    # a message appears on the station (a window in the desktop, which the station shows)
    quiet = wait_for(lambda: shows_xterm(desk), what="ana's desktop", timeout=30)
    dash.click("#toolbar [data-action=message]")
    dash.fill("#message", "Ten minutes left")
    dash.click("#confirm-ok")
    wait_for(lambda: (s := screen(desk)) and difference(s, quiet) > 1.0,
             what="the message on the station", timeout=30)

    # everything the teacher did is in the audit log
    audit = {(r["caller"], r["action"]) for r in daemon.cli_json("audit")}
    assert {(teacher.name, action) for action in ("view", "control", "block", "unblock", "message")} <= audit
    assert desk.errors == [] and dash.errors == []  # type: ignore[attr-defined]
