"""Applications in a session: start one as the session's user, list its windows, close one.

Starting: the argument vector as given (never a shell), as the user with their real
supplementary groups, the session's environment, inside the session's tracking (the child
joins the cgroup between fork and exec: ``launch.spawn``), with no capability and no
descriptor of the daemon's (``close_fds``), in its own process session.

Closing: only a process that belongs to the session is ever signalled: it runs as the
session's uid (real, effective and saved), it is among the session's tracked processes, and
it started when the list said. The process is held by a pidfd from the first check to the
last signal, so a pid reused meanwhile cannot be hit.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from polydesk.backends.xvnc.launch import _base_env, spawn
from polydesk.backends.xvnc.record import Handle
from polydesk.core.model import Account, BackendError
from polydesk.system import processes as procs
from polydesk.system.tracking import Tracker
from polydesk.system.x11 import apps as xapps
from polydesk.system.x11.xauth import X11Error


@dataclass(frozen=True)
class Closed:
    """How a close went: "closed" (it left when asked), "terminated" (SIGTERM), "killed" (SIGKILL)."""

    pid: int
    how: str


def session_env(handle: Handle, account: Account) -> dict[str, str]:
    """What a program started in the session sees: its display and cookie, its runtime
    directory, the D-Bus session bus when the desktop runs one there, HOME and the marker."""
    env = {
        **_base_env(handle, account),
        "DISPLAY": handle.display, "XAUTHORITY": handle.xauthority,
        "XDG_RUNTIME_DIR": handle.xdg_runtime_dir, "XDG_SESSION_TYPE": "x11",
    }
    bus = Path(handle.xdg_runtime_dir) / "bus"
    if bus.is_socket():
        env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={bus}"
    return env


def launch(handle: Handle, account: Account, argv: list[str], tracker: Tracker,
           own: Callable[[subprocess.Popen[bytes]], None]) -> int:
    """Start ``argv`` in the session; its pid. Blocking (the backend runs it in a thread).
    ``own`` takes the child, to be reaped; the session's tracking ends it with the session."""
    if account.uid != handle.uid:
        raise BackendError(f"session {handle.session_id} is not {account.name}'s")
    home = Path(account.home)
    cwd = str(home) if home.is_dir() else "/"
    try:
        proc = spawn(argv, account, session_env(handle, account), cwd, tracker, handle.dir / "apps.log")
    except OSError as exc:
        raise BackendError(f"session {handle.session_id}: cannot start {argv[0]}: {exc}") from exc
    own(proc)
    return proc.pid


def belongs(handle: Handle, tracker: Tracker, pid: int, start: int | None) -> str | None:
    """None if ``pid`` (started at ``start``) is a process of the session; else why not."""
    if pid <= 1:
        return f"pid {pid} is no application"
    if not procs.is_running(pid, start):
        return f"process {pid} is gone, or is another process than the one listed"
    uids = _uids(pid)
    if uids is None or any(uid != handle.uid for uid in uids):
        return f"process {pid} does not run as the session's user"
    if pid not in tracker.pids():
        return f"process {pid} is not a process of session {handle.session_id}"
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


def close(handle: Handle, tracker: Tracker, pid: int, start: int | None, wait: float,
          kill_after: float, windows: Callable[[], list[xapps.AppWindow]]) -> Closed:
    """Ask the windows of ``pid`` to close; SIGTERM it after ``wait`` s, SIGKILL after
    ``kill_after`` more. BackendError, with nothing signalled, if it is not the session's."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError as exc:
        raise BackendError(f"session {handle.session_id}: process {pid} is gone") from exc
    try:
        # Checked once the pidfd holds the process: every signal below goes to this one.
        why = belongs(handle, tracker, pid, start)
        if why is not None:
            raise BackendError(f"session {handle.session_id}: {why}: nothing was signalled")
        with contextlib.suppress(X11Error, BackendError):  # no display: the signals still work
            for window in windows():
                if window.pid == pid:
                    xapps.close_window(handle.screen, window.window)
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
