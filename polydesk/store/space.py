"""Room for the records that matter when a student has filled the disk.

Space is kept back in the state directory (a file of zeros, root's) for when the file system
is full: given back a chunk at a time to the write that needs it, so the actions that take
power away from users (block, log-off, disconnect) are still carried out and recorded, and
so is the record of an action already under way.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import os
from collections.abc import Iterator
from pathlib import Path

from polydesk.core.model import StoreError

RESERVE_BYTES = 1 << 20
RESERVE_CHUNK = 64 << 10  # one chunk holds a few transactions (each a handful of 4 KiB pages)
MIN_FREE_BYTES = 2 << 20
RESERVE_FILE = "space.reserve"


class Priority(enum.IntEnum):
    """How much of the reserve an action may count on when the state directory is full."""

    NORMAL = 0  # none: refused (logon, tokens), they can wait until space is freed
    SMALL = 1  # its upper half: a tiny record (message, unblock), and every write by default
    ESSENTIAL = 2  # all of it: actions that take power away from users (block, log-off, disconnect)


# Writes made within ``essential()`` (and the tasks it starts) may spend the whole reserve;
# any other write stops at its upper half. So nothing a user can repeat at will (reconnecting
# a station, killing a block's cover) can spend what block, log-off and disconnect need.
_ESSENTIAL: contextvars.ContextVar[bool] = contextvars.ContextVar("polydesk_essential", default=False)


@contextlib.contextmanager
def essential() -> Iterator[None]:
    token = _ESSENTIAL.set(True)
    try:
        yield
    finally:
        _ESSENTIAL.reset(token)


class Reserve:
    """The reserve file of one state directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / RESERVE_FILE
        self.fill()

    def fill(self) -> None:
        """Fill the reserve up to its size again (after it was given back, once space is freed)."""
        try:
            with open(self.path, "ab") as fh:
                missing = RESERVE_BYTES - fh.tell()
                if missing > 0:  # written out, not sparse: the blocks are ours
                    fh.write(b"\0" * missing)
        except OSError:  # no room for all of it now: what was written counts; the next
            pass  # check with room fills up the rest

    def left(self) -> int:
        try:
            return min(self.path.stat().st_size, RESERVE_BYTES)
        except FileNotFoundError:
            return 0

    def check(self, priority: Priority) -> None:
        """Refuse, before anything is done, when the state directory is (nearly) full, unless
        ``priority`` may count on the reserve (see Priority)."""
        try:
            fs = os.statvfs(self.directory)
        except OSError as exc:
            raise StoreError(f"state directory {self.directory}: {exc.strerror}") from exc
        free = fs.f_bavail * fs.f_frsize
        if free >= MIN_FREE_BYTES:
            self.fill()
            return
        left = self.left()
        if priority == Priority.ESSENTIAL or (priority == Priority.SMALL and left > RESERVE_BYTES // 2):
            return
        state = "full" if free < RESERVE_CHUNK else "nearly full"
        raise StoreError(f"state directory {self.directory} is {state} ({free // 1024} KiB free, "
                         f"{left // 1024} KiB of reserve left): this action is refused until space is "
                         "freed; block, log-off and disconnect still work")

    def give_back(self) -> bool:
        """On a full file system: free a chunk for the write under way, down to what this
        write may spend (all of it within ``essential()``, else the lower half stays); False
        when there is no more for it."""
        left = self.left()
        floor = 0 if _ESSENTIAL.get() else RESERVE_BYTES // 2
        if left <= floor:
            return False
        os.truncate(self.path, max(floor, left - RESERVE_CHUNK))
        return True
