"""Idle and disconnected limits on a real daemon: a station left idle is warned, disconnected
(it says why), and the disconnected session is then logged off."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import Browser, expect

from tests.harness import Daemon
from tests.users import TestUser, user_pids
from tests.web.webclient import new_page, sign_in


def test_idle_station_is_disconnected_then_logged_off(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser], browser: Browser
) -> None:
    daemon = daemon_factory("idle_disconnect_after = 6\ndisconnected_logoff_after = 3")
    ana = make_user("ana")
    page = new_page(browser)
    sign_in(page, daemon, ana)
    expect(page.locator("#station")).to_have_attribute("data-state", "connected", timeout=30_000)
    # nobody touches it: a warning in the session, then the station is disconnected and told why
    expect(page.locator("#ended-title")).to_have_text("Disconnected: the session was idle for too long",
                                                      timeout=30_000)
    # nobody comes back: logged off (gracefully), every process gone
    deadline = time.monotonic() + 30
    while daemon.sessions() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert daemon.sessions() == []
    deadline = time.monotonic() + 10
    while user_pids(ana.uid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert user_pids(ana.uid) == []
    by_polydesk = [r["action"] for r in daemon.cli_json("audit") if r["caller"] == "polydesk"]
    # the idle disconnect also ends the station's web sign-in (issue 14.1): "signin"
    assert by_polydesk == ["message", "signin", "disconnect", "logoff"], by_polydesk
    assert page.errors == []  # type: ignore[attr-defined]
