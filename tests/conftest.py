"""Shared fixtures, built from the harness (tests/harness.py): real test accounts, a running
daemon, and guards that fail any test leaving a process or an asyncio task behind (as
Cockpit's suite does). Run-wide checks (unexpected skips ...) are in tests/checks.py."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Browser, sync_playwright
from pytest_asyncio import is_async_test

from tests import harness, leaks
from tests.harness import (
    ADMIN_GROUP,
    DASHBOARD_GROUP,
    Daemon,
    TestUser,
    create_user,
    make_daemon_dirs,
    remove_with_processes,
    shutdown,
)

pytest_plugins = ["tests.checks", "pytester"]

if os.geteuid() != 0:
    pytest.exit("the Polydesk suite runs as root: it creates Unix users and real sessions", returncode=2)


@pytest.fixture(scope="session", autouse=True)
def pam_service() -> Iterator[str]:
    """The daemons of the tests sign people in through harness.PAM_SERVICE (no wait after a failure)."""
    with harness.pam_service() as service:
        yield service


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's headless Chromium driven by Playwright (never a browser Playwright downloads),
    started once per test file: a launch costs about a second. Not once per run: the sync API
    holds its event loop as running, and async tests need the thread's own (no file has both)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # A first page starts the helper processes Chromium keeps for its lifetime (storage,
        # network): here, not in the first test, whose leak check would count them as its own.
        browser.new_page().context.close()
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser(chromium: Browser) -> Iterator[Browser]:
    """The run's Chromium for one test; afterwards every page the test opened is closed with its
    context (cookies, storage), so no test sees another's sign-in and no page of a finished
    test keeps reconnecting to a daemon that is gone."""
    yield chromium
    for context in chromium.contexts:
        context.close()


@pytest.fixture(autouse=True)
def no_process_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a process of this run behind (see tests/leaks.py), its children
    and its accounts' processes whatever became of their parent. Fixtures of a wider scope are
    set up before and torn down after this one: their processes are not the test's."""
    before = leaks.processes()
    yield
    left = leaks.left_behind(before)
    if left:
        leaks.kill(left)
        pytest.fail(f"{request.node.nodeid} left processes behind: " + "; ".join(map(str, left)))


@pytest.fixture(autouse=True)
def no_task_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail an async test that leaves an asyncio task pending, once its fixtures are torn down."""
    if not is_async_test(request.node):
        yield
        return
    marker = request.node.get_closest_marker("asyncio")
    scope = (marker.kwargs.get("loop_scope") if marker else None) or \
        request.config.getini("asyncio_default_test_loop_scope") or "function"
    # pytest-asyncio's runner of that scope: asked for here, it is torn down after this check.
    loop = request.getfixturevalue(f"_{scope}_scoped_runner").get_loop()
    before = {t for t in asyncio.all_tasks(loop) if not t.done()}
    yield
    left = leaks.tasks_left(loop, before)
    if left:
        for task in left:
            task.cancel()
        names = "; ".join(map(leaks.describe, left))
        pytest.fail(f"{request.node.nodeid} left asyncio tasks pending: {names}")


@pytest.fixture
def make_user() -> Iterator[Callable[..., TestUser]]:
    """Create real ``pdt-`` accounts; removed, with every process they own, afterwards."""
    made: list[TestUser] = []

    def make(stem: str = "user", role: str = "standard") -> TestUser:
        groups = {"standard": (), "dashboard": (DASHBOARD_GROUP,), "admin": (ADMIN_GROUP,)}[role]
        user = create_user(stem, groups)
        made.append(user)
        return user

    yield make
    leftovers = {user.name: remove_with_processes(user) for user in made}
    stray = {name: pids for name, pids in leftovers.items() if pids}
    assert not stray, f"processes of test users outlived the test: {stray}"


@pytest.fixture
def daemon_factory(make_user: Callable[..., TestUser]) -> Iterator[Callable[..., Daemon]]:
    """Daemons are torn down (their sessions logged off) before the test users are removed."""
    made: list[Daemon] = []

    def make(extra_config: str = "", backends: str = '["xvnc"]', start: bool = True) -> Daemon:
        daemon = make_daemon_dirs(extra_config, backends)
        made.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield make
    for daemon in made:
        shutdown(daemon)


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    """A real daemon with the built-in Xvnc backend."""
    return daemon_factory()


@pytest.fixture
def fake_daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    """A real daemon whose sessions are in-memory (FakeBackend): for fast interface tests."""
    return daemon_factory(backends='["fake"]')
