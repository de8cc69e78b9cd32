"""Closing an application of a session, the same for every backend with an X display: ask its
windows to close, then SIGTERM, then SIGKILL, and only ever signal a process of that session.

A process belongs to the session when it runs as the session's uid (real, effective, saved and
file-system), is among the session's processes as its backend tracks them (``members``: the
cgroup, the marker, the logind scope) and started when the list said. The process is held by a
pidfd from the first check to the last signal, so a pid reused meanwhile cannot be hit.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from polydesk.core.apps import App
from polydesk.core.model import BackendError
from polydesk.core.screen import Screen
from polydesk.system import processes as procs
from polydesk.system.x11 import apps as xapps
from polydesk.system.x11.xauth import X11Error

Members = Callable[[], list[int]]


@dataclass(frozen=True)
class Closed:
    """How a close went: "closed" (it left when asked), "terminated" (SIGTERM), "killed" (SIGKILL)."""

    pid: int
    how: str


def with_start_times(windows: list[xapps.AppWindow]) -> list[App]:
    """The windows as the product lists applications: each with its process's start time."""
    found = []
    for window in windows:
        start = procs.start_time(window.pid) if window.pid else None
        found.append(App(window=window.window, title=window.title, name=window.klass or window.instance,
                         wm_class=window.klass, pid=window.pid, pid_source=window.pid_source, start=start,
                         started_at=procs.start_epoch(start) if start is not None else None))
    return found


def belongs(session: str, uid: int, members: Members, pid: int, start: int | None) -> str | None:
    """None if ``pid`` (started at ``start``) is a process of ``session``; else why not."""
    if pid <= 1:
        return f"pid {pid} is no application"
    if not procs.is_running(pid, start):
        return f"process {pid} is gone, or is another process than the one listed"
    uids = _uids(pid)
    if uids is None or any(value != uid for value in uids):
        return f"process {pid} does not run as the session's user"
    if pid not in members():
        return f"process {pid} is not a process of session {session}"
    return None


def _uids(pid: int) -> tuple[int, ...] | None:
    """Real, effective, saved and filesystem uid of ``pid``."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Uid:"):
                return tuple(int(v) for v in line.split()[1:5])
    except (OSError, ValueError):
        return None
    return None


def close(session: str, uid: int, members: Members, screen: Screen, pid: int, start: int | None,
          wait: float, kill_after: float) -> Closed:
    """Ask the windows of ``pid`` to close; SIGTERM it after ``wait`` s, SIGKILL after
    ``kill_after`` more. BackendError, with nothing signalled, if it is not the session's.
    Blocking: the backends run it in a thread."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as exc:
        raise BackendError(f"session {session}: process {pid} is gone") from exc
    try:
        # Checked once the pidfd holds the process: every signal below goes to this one.
        why = belongs(session, uid, members, pid, start)
        if why is not None:
            raise BackendError(f"session {session}: {why}: nothing was signalled")
        with contextlib.suppress(X11Error, OSError):  # the display gone: the signals still work
            for window in xapps.list_windows(screen):
                if window.pid == pid:
                    xapps.close_window(screen, window.window)
        if _exited(pidfd, wait):
            return Closed(pid, "closed")
        signal.pidfd_send_signal(pidfd, signal.SIGTERM)
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGCONT)
        if _exited(pidfd, kill_after):
            return Closed(pid, "terminated")
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        _exited(pidfd, 5.0)
        return Closed(pid, "killed")
    except ProcessLookupError:
        return Closed(pid, "closed")
    finally:
        os.close(pidfd)


def _exited(pidfd: int, timeout: float) -> bool:
    """Wait until the process ends (its pidfd becomes readable), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if select.select([pidfd], [], [], max(left, 0))[0]:
            return True
        if left <= 0:
            return False
