"""Ending a session: helper windows, SIGTERM, a wait, SIGKILL, then every file it had."""

from __future__ import annotations

import logging
import shutil
import signal
import time
from collections.abc import Callable

from polydesk.backends.helpers import stop_helpers
from polydesk.backends.xvnc.display import remove_display_files
from polydesk.backends.xvnc.record import Handle
from polydesk.system import processes as procs
from polydesk.system import tracking

log = logging.getLogger(__name__)


def end_session(handle: Handle, kill_after: float, reap: Callable[[], None]) -> None:
    """Blocking and idempotent. ``reap`` waits for whichever of the daemon's own children
    (Xvnc, the desktop) have exited, so they do not linger as zombies counted as running."""
    stop_helpers(handle.dir)
    tracker = handle.tracker()
    if handle.same_boot():
        tracker.terminate()
        _wait_gone(tracker, handle, kill_after, reap)
        left = tracker.kill()
        if left:
            log.warning("session %s: pids %s survived SIGKILL", handle.session_id, left)
        _kill_xvnc(handle, reap)
    if handle.display_number >= 0:
        remove_display_files(handle.display_number, handle.xvnc_pid)
    shutil.rmtree(handle.dir, ignore_errors=True)
    tracker.remove()


def _wait_gone(tracker: tracking.Tracker, handle: Handle, seconds: float,
               reap: Callable[[], None]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        reap()
        if not tracker.pids() and not handle.xvnc_running():
            return
        time.sleep(0.02)


def _kill_xvnc(handle: Handle, reap: Callable[[], None]) -> None:
    """Xvnc is in the cgroup too; this is for the marker mode and for the paranoid."""
    if handle.xvnc_pid is not None and handle.xvnc_running():
        procs.send([handle.xvnc_pid], signal.SIGKILL)
        deadline = time.monotonic() + 2
        while handle.xvnc_running() and time.monotonic() < deadline:
            reap()
            time.sleep(0.01)
