"""Fixtures for the web tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.webclient import Room


@pytest.fixture
def room(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> Room:
    """A fake-host daemon with an administrator, a Dashboard user and two standard users."""
    return Room(fake_daemon, make_user("adm", "admin"), make_user("tch", "dashboard"),
                make_user("ana"), make_user("bia"))


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright (never a browser Playwright downloads)."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()
