"""The daemon's log: the same warning or error repeated is let through a few times, then counted.

Out of file descriptors, asyncio logged "socket.accept() out of system resource" with a
traceback up to 2,048 times per loop turn (once per backlog slot): 413 MB in a minute, which
then fills the disk the audit needs. A record of a kind already seen ``burst`` times in the
current ``window`` is dropped and counted; the first one let through after that says how many
were dropped. A kind is the logger, level and message template (not its arguments).
Information records are never held back (they carry who logged on, from where).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

BURST = 10
WINDOW_S = 60.0
MAX_KINDS = 1000  # kinds remembered before old windows are swept


class RepeatLimiter(logging.Filter):
    def __init__(self, burst: int = BURST, window: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.clock = clock
        self._kinds: dict[tuple[str, int, str], list[float | int]] = {}  # [window start, let, dropped]

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = self.clock()
        key = (record.name, record.levelno, str(record.msg))
        kind = self._kinds.get(key)
        if kind is None or now - kind[0] >= self.window:
            dropped = int(kind[2]) if kind is not None else 0
            if len(self._kinds) >= MAX_KINDS:
                self._kinds = {k: v for k, v in self._kinds.items() if now - v[0] < self.window}
            self._kinds[key] = [now, 1, 0]
            if dropped:
                record.msg = f"{record.msg} [{dropped} more like this were not logged]"
            return True
        if kind[1] < self.burst:
            kind[1] += 1
            return True
        kind[2] += 1
        return False


def limit_repeats(logger: logging.Logger | None = None) -> None:
    """Put a RepeatLimiter on every handler of ``logger`` (the root logger by default)."""
    limiter = RepeatLimiter()
    for handler in (logger or logging.getLogger()).handlers:
        handler.addFilter(limiter)
