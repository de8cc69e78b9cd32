"""Fixtures for the web tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.webclient import Room


@pytest.fixture
def room(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> Room:
    """A fake-host daemon with an administrator, a Dashboard user and two standard users."""
    return Room(fake_daemon, make_user("adm", "admin"), make_user("tch", "dashboard"),
                make_user("ana"), make_user("bia"))


