"""Processes as the kernel shows them in /proc: one process named for good by its pid and
start time, whether it runs or is exiting, and signalling many at once.

A session's processes as a set (cgroups, the marker) are ``tracking``'s.
Everything here is synchronous and short; the async backends run it in a thread.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path

# ---------------------------------------------------------------- /proc helpers


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot, or None if it is gone.

    With the pid, it names one process for good: a reused pid has another start time.
    """
    stat = stat_fields(pid)
    return int(stat[19]) if stat else None


def is_running(pid: int, started: int | None = None) -> bool:
    """True if ``pid`` exists, is not a zombie, and (if given) started at ``started``."""
    stat = stat_fields(pid)
    if stat is None or stat[0] in ("Z", "X"):
        return False
    return started is None or int(stat[19]) == started


def is_exiting(pid: int) -> bool:
    """True if ``pid`` has begun to exit (the kernel's PF_EXITING), or is gone. A process
    killed with SIGKILL closes its sockets while still neither gone nor a zombie."""
    stat = stat_fields(pid)
    return stat is None or stat[0] in ("Z", "X") or bool(int(stat[6]) & _PF_EXITING)


def start_epoch(ticks: int) -> float:
    """A start time in clock ticks since boot as a time (epoch seconds)."""
    return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def boot_id() -> str:
    """Start times only mean something within one boot."""
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


_PF_EXITING = 0x4


def stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat from the state on (the name may hold spaces and parens)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2:].split()


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def live(pids: Iterable[int]) -> list[int]:
    """Drop zombies and vanished pids: a zombie is dead, only unreaped."""
    me = os.getpid()
    return sorted({pid for pid in pids if pid != me and is_running(pid)})


def send(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
