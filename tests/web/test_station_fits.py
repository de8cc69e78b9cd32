"""Issue 14.4: the desktop fits the station's window, and the monitoring notice is shown once.

A class found sessions fixed at 1280x800 and scaled down to 77% on a 1280x720 laptop and an
unreadable 60% on a 768-pixel tablet, and a notice taking 60-100 pixels at every log-on. Here a
student signs in at a laptop and at a tablet (English, Portuguese), and what they would check is
checked: the X screen of their session is exactly the size of the desktop area of the page
(read from the X server itself, as root), drawn at 100%; it keeps that size when they
disconnect and resume; a teacher viewing and taking control from another window size does not
change it; a window beyond the administrator's limits gets the limit; the notice lies over the
desktop (which keeps its size), is dismissed once and is not shown at the next log-on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from polydesk.core.screen import Screen
from polydesk.system.x11 import client as x11
from tests.harness import Daemon, wait_for
from tests.users import TestUser
from tests.web.test_station_e2e import CONNECT_MS, connected, session_of
from tests.web.webclient import sign_in

# The framebuffer noVNC draws and the size it is shown at in the page (1:1 means no scaling).
CANVAS_JS = """() => {
  const c = document.querySelector("#screen canvas");
  const area = document.querySelector("#screen").getBoundingClientRect();
  if (!c) return null;
  const shown = c.getBoundingClientRect();
  return {fb: [c.width, c.height], shown: [Math.round(shown.width), Math.round(shown.height)],
          area: [Math.floor(area.width), Math.floor(area.height)]};  // noVNC asks for whole pixels
}"""
NOTICE = {"en": "Monitoring is on", "pt-BR": "monitoramento"}
MAX = (1800, 1000)


def page_at(browser: Browser, width: int, height: int, locale: str) -> Page:
    page = browser.new_page(viewport={"width": width, "height": height}, locale=locale)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def x_screen(daemon: Daemon, session_id: str) -> tuple[int, int]:
    """The session's X screen size, asked of its X server (the root window's geometry)."""
    session = next(s for s in daemon.sessions() if s["id"] == session_id)
    xauthority = daemon.runtime_dir / "sessions" / session_id / "Xauthority"
    with x11.connection(Screen(str(session["display"]), str(xauthority))) as conn:
        geometry = conn.screen().root.get_geometry()
        return int(geometry.width), int(geometry.height)


def canvas(page: Page) -> dict[str, Any]:
    shot: dict[str, Any] | None = page.evaluate(CANVAS_JS)
    assert shot is not None
    return shot


def fits(daemon: Daemon, session_id: str, page: Page, size: tuple[int, int] | None = None) -> None:
    """The session's screen is ``size`` (default: the page's desktop area), drawn unscaled."""
    want = size or tuple(canvas(page)["area"])

    def done() -> bool:
        shot = canvas(page)
        return (x_screen(daemon, session_id) == want and tuple(shot["fb"]) == want
                and (size is not None or tuple(shot["shown"]) == want))
    wait_for(done, timeout=20, what=f"a session screen of {want} shown at 100% "
                                     f"(X: {x_screen(daemon, session_id)}, page: {canvas(page)})")


@pytest.mark.parametrize(("width", "height", "locale"), [(1280, 720, "en"), (768, 1024, "pt-BR")])
def test_the_desktop_fits_the_window_and_the_notice_is_shown_once(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser], browser: Browser,
    width: int, height: int, locale: str,
) -> None:
    daemon = daemon_factory(f'max_geometry = "{MAX[0]}x{MAX[1]}"')
    ana, teacher = make_user("ana"), make_user("tch", "dashboard")

    # the student signs in: the monitoring notice lies over the desktop, which fills the window
    desk = page_at(browser, width, height, locale)
    sign_in(desk, daemon, ana)
    connected(desk)
    notice = desk.locator("#privacy-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(NOTICE[locale])
    a = session_of(daemon, ana)["id"]
    fits(daemon, a, desk)
    area = tuple(canvas(desk)["area"])
    bar = desk.locator("#station-bar").bounding_box()
    assert bar is not None
    assert area == (width, int(height - bar["height"])), (area, bar)  # nothing else takes room
    size = x_screen(daemon, a)
    desk.click("#privacy-ok")
    expect(notice).to_be_hidden()
    assert tuple(canvas(desk)["area"]) == area  # the notice took no room from the desktop

    # disconnect and resume: the same size, and the notice is not shown again
    desk.click("#station-disconnect")
    wait_for(lambda: session_of(daemon, ana)["state"] == "disconnected", timeout=10,
             what="the session to be disconnected")
    assert x_screen(daemon, a) == size
    desk.close()
    desk = page_at(browser, width, height, locale)
    sign_in(desk, daemon, ana)
    connected(desk)
    fits(daemon, a, desk, size)
    expect(desk.locator("#privacy-notice")).to_have_count(0)

    # a teacher at another window size views, then takes control: the student's screen stays
    dash = page_at(browser, 1500, 940, locale)
    sign_in(dash, daemon, teacher)
    dash.locator(f"#card-{a}").click()
    dash.click("#toolbar [data-station=view]")
    panel = dash.locator("#enlarge")
    expect(panel).to_have_attribute("data-state", "connected", timeout=CONNECT_MS)
    dash.click("#enlarge-control")
    expect(panel).to_have_attribute("data-mode", "control")
    expect(panel).to_have_attribute("data-state", "connected", timeout=CONNECT_MS)
    teacher_sees = "() => (document.querySelector('#enlarge-screen canvas') || {}).width"
    wait_for(lambda: dash.evaluate(teacher_sees) == size[0],
             what="the teacher's view of the same screen", timeout=30)
    dash.set_viewport_size({"width": 1100, "height": 800})  # and resizes their window meanwhile
    dash.wait_for_timeout(2000)
    assert x_screen(daemon, a) == size
    dash.close()
    fits(daemon, a, desk, size)

    # the student's own window grows beyond the administrator's limit: the limit, scaled to fit
    desk.set_viewport_size({"width": 2400, "height": 1400})
    fits(daemon, a, desk, MAX)
    desk.set_viewport_size({"width": width, "height": height})  # and back: the window's size again
    fits(daemon, a, desk)

    # the next log-on (a new sign-in, another day): no notice
    desk.close()
    later = page_at(browser, width, height, locale)
    sign_in(later, daemon, ana)
    connected(later)
    expect(later.locator("#station-bar")).to_be_visible()
    expect(later.locator("#privacy-notice")).to_have_count(0)
    fits(daemon, a, later)
    resizes = [r for r in daemon.cli_json("audit") if r["action"] == "resize"]
    assert resizes and {r["caller"] for r in resizes} == {ana.name}, resizes  # never the teacher's
    assert [MAX[0], MAX[1]] in [r["detail"]["size"] for r in resizes]
    assert not later.errors, later.errors  # type: ignore[attr-defined]
