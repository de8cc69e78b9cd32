"""The daemon's own memory: what the C allocator keeps, and tracemalloc snapshots for
developers hunting growth.

``POLYDESK_TRACEMALLOC=DIR`` in the daemon's environment starts tracemalloc at startup and
writes a snapshot into DIR every ``POLYDESK_TRACEMALLOC_S`` seconds (default 60) and on
SIGUSR2. Compare two with ``python -m polydesk.system.memory OLD NEW`` (docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import linecache
import logging
import os
import signal
import sys
import time
import tracemalloc
from pathlib import Path

log = logging.getLogger("polydesk.memory")

FRAMES = 25  # deep enough to see which of our functions asked, under asyncio's and the stdlib's
M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
ARENAS = 2  # the loop's thread, and one for all the workers
GIVE_BACK_EVERY_S = 15.0  # a trim of ~100 MB takes ~10 ms in a worker thread


class SnapshotTaker:
    """Dumps tracemalloc snapshots into a directory, numbered in the order taken."""

    def __init__(self, directory: Path, every_s: float) -> None:
        self.directory = directory
        self.every_s = every_s
        self.count = 0
        self._task: asyncio.Task[None] | None = None

    def take(self) -> Path:
        """One snapshot now; its file is named by its number and the daemon's RSS (MB)."""
        self.count += 1
        path = self.directory / f"{self.count:04d}-{time.strftime('%H%M%S')}-rss{rss_kib() // 1024}.snap"
        tracemalloc.take_snapshot().dump(str(path))
        log.info("tracemalloc snapshot %s (traced %.1f MB)", path, tracemalloc.get_traced_memory()[0] / 2**20)
        return path

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        tracemalloc.start(FRAMES)
        self.take()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGUSR2, self.take)
        self._task = asyncio.create_task(self._every())

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(self.every_s)
            await asyncio.to_thread(self.take)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR2)
        self.take()
        tracemalloc.stop()


def snapshots_from_environment() -> SnapshotTaker | None:
    """The developer switch, or None when it is off (as in production)."""
    directory = os.environ.get("POLYDESK_TRACEMALLOC")
    if not directory:
        return None
    return SnapshotTaker(Path(directory), float(os.environ.get("POLYDESK_TRACEMALLOC_S", "60")))


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, whose allocator the tuning below speaks to; None elsewhere (musl has no knobs)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.malloc_trim, libc.mallopt  # noqa: B018 (both or neither)
    except (OSError, AttributeError, TypeError):
        return None
    return libc


def give_back() -> bool:
    """Return the C allocator's free pages to the system (glibc's malloc_trim(0)); whether any were.

    Python's objects are a small part of what the daemon allocates: pictures, X replies, JSON
    and SQLite rows go through malloc, from the loop's and the worker threads' arenas, and glibc
    gives back only the free space at the top of each arena. What is freed in the middle stays
    resident: the soak grew ~10 MB per 10 minutes that way while Python's own objects stayed flat.
    """
    libc = _libc()
    return bool(libc and libc.malloc_trim(0))


def limit_arenas(count: int = ARENAS) -> bool:
    """At most ``count`` malloc arenas (glibc's M_ARENA_MAX, as MALLOC_ARENA_MAX=count would);
    whether glibc took it. Before the first threads start: an arena, once made, stays.

    By default glibc gives each new thread that meets a busy lock an arena of its own, up to
    8 per core, and each keeps its own free fragments resident: the soak's daemon had 8 (the
    thumbnail pool, the default executor, the threads that end sessions). Two arenas are
    enough: most of the threads' work holds the GIL, so they seldom wait for the arena's lock.
    """
    libc = _libc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, count))


async def give_back_every(seconds: float) -> None:
    """``give_back`` every ``seconds``, in a worker thread (a trim takes milliseconds), for ever."""
    while True:
        await asyncio.sleep(seconds)
        if not log.isEnabledFor(logging.DEBUG):
            await asyncio.to_thread(give_back)
            continue
        before, started = rss_kib(), time.perf_counter()
        await asyncio.to_thread(give_back)
        log.debug("gave back %d KiB of free memory in %.1f ms", before - rss_kib(),
                  (time.perf_counter() - started) * 1000)


def rss_kib() -> int:
    """This process's resident memory, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def compare(old: Path, new: Path, top: int = 15) -> str:
    """What grew from ``old`` to ``new``, biggest first, each with the stack that allocated it."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, linecache.__file__)]
    before = tracemalloc.Snapshot.load(str(old)).filter_traces(ignore)
    after = tracemalloc.Snapshot.load(str(new)).filter_traces(ignore)
    lines = [f"traced: {_total(before) / 2**20:.1f} MB -> {_total(after) / 2**20:.1f} MB"]
    for stat in after.compare_to(before, "traceback")[:top]:
        lines.append(f"{stat.size_diff / 1024:+.0f} KiB {stat.count_diff:+d} blocks "
                     f"(now {stat.size / 1024:.0f} KiB in {stat.count})")
        # Oldest frame first: the last of ours says who asked, the innermost what allocated.
        ours = [frame for frame in stat.traceback if "/polydesk/" in frame.filename][-5:]
        if stat.traceback[-1] not in ours:
            ours.append(stat.traceback[-1])
        lines.extend(f"    {frame.filename}:{frame.lineno}" for frame in ours)
    return "\n".join(lines)


def _total(snapshot: tracemalloc.Snapshot) -> int:
    return sum(stat.size for stat in snapshot.statistics("filename"))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m polydesk.system.memory OLD.snap NEW.snap")
    print(compare(Path(sys.argv[1]), Path(sys.argv[2])))
