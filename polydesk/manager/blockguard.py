"""The block guard: while a session is blocked, whatever undoes the block is put back.

Any X client of a session may turn its Xvnc's input settings back on or kill the cover
window: a program the user started before the block, an SSH login, a cron job. The
station bridge drops a blocked station's input whatever happens inside (so the person
at the station stays blocked), but the screen must stay covered and the Dashboard must
not say "Blocked" over an open desktop. Twice a second (``block_guard_interval``), each
blocked session's backend is asked to put back what was undone (``SessionBackend.restore_block``);
each time it had to, the session's ``block_undone`` count goes up (the Dashboard marks the
card) and the audit log says what was undone.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from polydesk.core.model import PolydeskError

if TYPE_CHECKING:
    from polydesk.manager.manager import Manager

log = logging.getLogger(__name__)


class BlockGuard:
    def __init__(self, manager: Manager, interval: float) -> None:
        self.manager = manager
        self.interval = interval

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.manager.restore_blocks()
            except PolydeskError as exc:  # a full disk: the bridge still holds; next round
                log.warning("checking blocked sessions failed: %s", exc)
