"""The manager's background tasks: whatever one raises is logged, never left unretrieved."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


def background(work: Coroutine[Any, Any, T], what: str) -> asyncio.Task[T]:
    task = asyncio.create_task(work)
    task.add_done_callback(functools.partial(_report, what))
    return task


def _report(what: str, task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", what, exc_info=task.exception())
