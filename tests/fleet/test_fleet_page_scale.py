"""The fleet page with a big fleet, in Chromium: 300 simulated hosts of 20 sessions each publish
into the bucket as daemons do, and a Dashboard user on a real daemon sees hosts first, opens one
to load its sessions, finds a session on a far host by a search the daemon does, and the page
keeps only the rows on screen in the document, asking thumbnails only of the cards on screen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.sync_api import Browser, Page, Request, expect

from polydesk.fleet.wire import new_seed
from tests.fleet.simulated import Publishing, SimulatedHost, daemon_config
from tests.harness import Daemon, Nats, wait_for
from tests.users import TestUser
from tests.web.webclient import new_page, sign_in

HOSTS, SESSIONS = 300, 20
ON_SCREEN = """() => { const view = document.getElementById('list').getBoundingClientRect();
  return Array.from(document.querySelectorAll('#rows .card')).filter((c) => {
    const box = c.getBoundingClientRect(); return box.bottom > view.top && box.top < view.bottom;
  }).map((c) => c.dataset.id); }"""


def in_document(page: Page, selector: str) -> int:
    return int(page.locator(selector).count())


def test_a_big_fleet_shows_hosts_first_and_draws_only_what_is_on_screen(
    nats_server: Nats, daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser],
    browser: Browser, tmp_path: Path,
) -> None:
    simulated = [SimulatedHost(i, SESSIONS) for i in range(HOSTS)]
    seed = tmp_path / "A.seed"
    seed.write_bytes(new_seed() + b"\n")
    seed.chmod(0o600)
    daemon = daemon_factory(extra_config=daemon_config(simulated, nats_server.urls[0], str(seed), name="A"),
                            backends='["fake"]')
    teacher = make_user("tch", "dashboard")
    with Publishing(simulated, nats_server.urls[0]), daemon.client("/api/v1") as http:
        wait_for(lambda: http.get("/fleet/sessions", params={"limit": 1}).json()["total"] == HOSTS * SESSIONS,
                 timeout=60, what="the daemon to mirror the whole simulated fleet")
        page = new_page(browser)
        sign_in(page, daemon, teacher)
        page.goto(daemon.url + "/fleet")
        page.wait_for_selector("#fleet[data-ready=true]")

        # Hosts first, with their counts; no session asked for yet; only the rows on screen drawn.
        expect(page.locator("#host-sim000 .count")).to_have_text("20 sessions · 20 active")
        assert page.locator("#rows").evaluate("r => r.style.height") == f"{(HOSTS + 1) * 44}px"
        assert 5 < in_document(page, "#rows .host-row") <= 40 and in_document(page, ".card") == 0

        # A far host, opened: its sessions are loaded and shown, and only the rows on screen drawn.
        page.locator("#list").evaluate("l => { l.scrollTop = l.scrollHeight; }")
        page.locator("#host-sim299").click()
        expect(page.locator("#host-sim299")).to_have_attribute("aria-expanded", "true")
        page.locator("#list").evaluate("l => { l.scrollTop = l.scrollHeight; }")
        expect(page.locator('[id="card-sim299/20"] .user')).to_have_text("student29919")
        assert in_document(page, ".card") <= SESSIONS and in_document(page, "#rows .host-row") <= 40

        # A search the daemon does: six thousand sessions match, a bounded few are in the document,
        # and thumbnails are asked for the cards on screen only.
        thumbnails: list[str] = []

        def asked(request: Request) -> None:
            if "/thumbnail" in request.url:
                thumbnails.append("/".join(request.url.split("/fleet/sessions/")[1].split("/")[:2]))

        page.on("request", asked)
        page.fill("#search", "student")
        expect(page.locator("#match-count")).to_have_text(f"{HOSTS * SESSIONS} sessions match")
        expect(page.locator("#host-sim299")).to_have_count(0)  # what the host view had drawn is gone
        thumbnails.clear()  # (asked for while it was on screen)
        for _ in range(100):  # Playwright reports requests while it is called: wait through it
            if len(thumbnails) >= 6:
                break
            page.wait_for_timeout(100)
        on_screen = page.evaluate(ON_SCREEN)
        assert len(thumbnails) >= 6 and 0 < len(on_screen) <= 40 and in_document(page, ".card") <= 80
        assert set(thumbnails) <= set(on_screen), (thumbnails, on_screen)
        height = int(page.locator("#rows").evaluate("r => parseInt(r.style.height)"))
        page.locator("#list").evaluate("l => { l.scrollTop = l.scrollHeight; }")  # the end: the next page
        page.wait_for_function(f"() => parseInt(document.getElementById('rows').style.height) > {height}")
        assert in_document(page, ".card") <= 80

        # A session of the farthest host, found by its user name.
        page.fill("#search", "student29919")
        expect(page.locator("#match-count")).to_have_text("1 session matches")
        expect(page.locator("#rows .card")).to_have_count(1)
        expect(page.locator('[id="card-sim299/20"]')).to_be_visible()
        assert page.errors == []  # type: ignore[attr-defined]
        page.close()
