"""Projection in Chromium: a teacher projects a student's desktop from the Dashboard's Project
menu; the other student's station page shows it, with a banner saying whose it is, and the
Dashboard keeps a Stop button while it lasts; Stop gives the station its own desktop back."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Browser, Page, expect

from tests.harness import Daemon, wait_for
from tests.screens import fill
from tests.users import TestUser
from tests.web.test_station_e2e import connected
from tests.web.webclient import logon, new_page, sign_in

ORANGE, NAVY = 0xFF8000, 0x204080
PIXEL_JS = """([x, y]) => {
  const c = document.querySelector("#screen canvas");
  if (!c || c.width < 300) return null;
  return Array.from(c.getContext("2d").getImageData(x, y, 1, 1).data.slice(0, 3));
}"""


def orange_at(page: Page) -> bool:
    rgb = page.evaluate(PIXEL_JS, [150, 150])
    return rgb is not None and abs(rgb[0] - 0xFF) < 24 and abs(rgb[1] - 0x80) < 24 and rgb[2] < 40


def test_the_teacher_projects_from_the_dashboard_and_the_station_shows_it(
    daemon: Daemon, make_user: Callable[..., TestUser], browser: Browser
) -> None:
    teacher, ana, bia = make_user("tch", "dashboard"), make_user("ana"), make_user("bia")
    a, b = logon(daemon, ana), logon(daemon, bia)
    display = next(s for s in daemon.sessions() if s["id"] == a)["display"]
    fill(daemon, a, str(display), (0, 0, 1280, 800), NAVY)
    fill(daemon, a, str(display), (100, 100, 300, 200), ORANGE)

    student = new_page(browser)
    sign_in(student, daemon, bia)
    student.goto(daemon.url + "/desktop")
    connected(student)
    assert not orange_at(student)

    dashboard = new_page(browser)
    sign_in(dashboard, daemon, teacher)
    dashboard.locator(f"#card-{a}").click()
    dashboard.click("#project-button")
    dashboard.click("[data-project=selected-to-all]")
    expect(dashboard.locator("#confirm-users")).to_contain_text(bia.name)
    expect(dashboard.locator("#confirm-cancel")).to_be_focused()  # never the button that acts
    dashboard.click("#confirm-ok")
    expect(dashboard.locator("#results-body")).to_contain_text(bia.name)
    expect(dashboard.locator("#stop-projecting")).to_be_visible()
    expect(dashboard.locator(f"#card-{b} .projection-badge")).to_contain_text(ana.name)

    banner = student.locator("#projection-banner")
    expect(banner).to_be_visible(timeout=10_000)
    expect(banner).to_contain_text(ana.name)
    expect(banner).to_contain_text(teacher.name)
    connected(student)
    wait_for(lambda: orange_at(student), what="the source's screen at the station")

    dashboard.click("#stop-projecting")
    expect(dashboard.locator("#stop-projecting")).to_be_hidden(timeout=10_000)
    expect(banner).to_be_hidden(timeout=10_000)
    connected(student)
    wait_for(lambda: not orange_at(student), what="the station's own desktop again")
    assert student.errors == [] and dashboard.errors == []  # type: ignore[attr-defined]
