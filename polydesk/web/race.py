"""Running a connection's loops side by side until the first one ends."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Any


async def first_done(jobs: Sequence[Awaitable[Any]]) -> set[asyncio.Future[Any]]:
    """Run ``jobs`` until one ends; cancel and await the rest; return the finished ones."""
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return done
