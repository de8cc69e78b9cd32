"""A manager over the in-memory FakeBackend, started, closed after the test with its store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.config.settings import Settings
from polydesk.core.events import EventBus
from polydesk.manager.manager import Manager
from polydesk.store.store import Store
from tests.manager.helpers import MakeManager, lookup


@pytest.fixture
async def make_manager(tmp_path: Path) -> AsyncIterator[MakeManager]:
    """Managers with these settings (over logoff_grace=0, close_wait=0.1), each with its store."""
    made: list[tuple[Manager, Store]] = []

    async def make(**settings: Any) -> Manager:
        store = Store(tmp_path / ("polydesk.db" if not made else f"polydesk-{len(made)}.db"))
        mgr = Manager([FakeBackend()], store, EventBus(),
                      Settings(**{"state_dir": str(tmp_path), "runtime_dir": str(tmp_path),
                                  "logoff_grace": 0, "close_wait": 0.1, **settings}), lookup)
        await mgr.start()
        made.append((mgr, store))
        return mgr

    yield make
    for mgr, store in made:
        await mgr.close()
        store.close()


@pytest.fixture
async def manager(make_manager: MakeManager) -> Manager:
    return await make_manager()
