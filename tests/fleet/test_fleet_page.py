"""The fleet page in Chromium: a Dashboard user on host A sees every host's sessions grouped by
host, live thumbnails of host B's real desktops fetched through A, and logs off a selected
session of host B; the others stay."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, expect

from tests.fleet.hosts import Host
from tests.fleet.test_fleet_commands import logon
from tests.harness import Nats
from tests.users import TestUser, user_pids
from tests.web.webclient import new_page, sign_in

SCREENSHOT = Path(__file__).parent.parent.parent / "build" / "fleet.png"


def test_fleet_page_groups_by_host_and_logs_off_a_remote_session(
    nats_server: Nats, make_fleet: Callable[..., list[Host]], make_user: Callable[..., TestUser],
    browser: Browser,
) -> None:
    a, b = make_fleet(nats_server, settings="logoff_grace = 0")
    teacher = make_user("tch", "dashboard")
    ana, bia, caio = (make_user(n) for n in ("ana", "bia", "caio"))
    on_b = {u.name: logon(b.daemon, u) for u in (ana, bia)}
    on_a = logon(a.daemon, caio)

    page = new_page(browser)
    sign_in(page, a.daemon, teacher)
    page.click("#to-fleet")
    expect(page).to_have_url(a.daemon.url + "/fleet")
    expect(page.locator("#rows .host-row.online .name")).to_have_text(["A", "B"])
    expect(page.locator("#rows .card")).to_have_count(0)  # a host's sessions: once it is opened
    page.click("#host-A")
    page.click("#host-B")
    expect(page.locator('.card-row[data-host="A"] .card .user')).to_have_text([caio.name])
    expect(page.locator('.card-row[data-host="B"] .card .user')).to_have_text(sorted([ana.name, bia.name]))
    # B's real desktops, pictured by B, asked for through A
    for session_id in on_b.values():
        image = page.locator(f'[id="card-B/{session_id}"] img.thumb')
        expect(image).to_have_js_property("complete", True, timeout=15_000)
        page.wait_for_function("img => img.naturalWidth > 0", arg=image.element_handle(), timeout=15_000)

    page.select_option("#host-filter", "B")
    expect(page.locator("#host-A")).to_have_count(0)
    page.locator(f'[id="card-B/{on_b[ana.name]}"]').click()
    expect(page.locator("#selected-count")).to_have_text("1 selected")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#toolbar [data-action=logoff-selected]")
    expect(page.locator("#results-body tr td").nth(2)).to_have_text("Logging off…")
    expect(page.locator(f'[id="card-B/{on_b[ana.name]}"]')).to_have_count(0, timeout=30_000)
    expect(page.locator(f'[id="card-B/{on_b[bia.name]}"]')).to_be_visible()
    assert user_pids(ana.uid) == [] and user_pids(bia.uid) != [] and user_pids(caio.uid) != []
    assert [s["id"] for s in a.daemon.sessions()] == [on_a]
    assert page.errors == []  # type: ignore[attr-defined]
