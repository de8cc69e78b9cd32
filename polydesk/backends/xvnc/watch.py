"""Watching a running session until its Xvnc exits, and saying why it ended.

Watched through pidfds: after a daemon restart Xvnc is not our child, so waitpid cannot
tell; polling is the fallback on kernels without pidfd_open. When the desktop exits
first (the user logged out from inside), Xvnc is stopped, as xinit and display managers do.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

from polydesk.backends.xvnc.record import Handle
from polydesk.core.model import EndReason
from polydesk.system import processes as procs


async def wait_ended(handle: Handle) -> EndReason:
    """Return when the session's Xvnc exits: LOGOUT if its desktop ended first, else CRASHED."""
    if not handle.same_boot():
        return EndReason.CRASHED
    try:
        return await _wait_with_pidfds(handle)
    except OSError:
        return await _wait_polling(handle)


async def _wait_with_pidfds(handle: Handle) -> EndReason:
    xvnc = _open_pidfd(handle.xvnc_pid, handle.xvnc_start)
    if xvnc is None:
        return EndReason.CRASHED
    desktop = _open_pidfd(handle.desktop_pid, handle.desktop_start)
    reason = EndReason.CRASHED
    try:
        # Both fds may turn readable in one turn of the loop when Xvnc dies and takes the
        # desktop with it, or the desktop's first, while Xvnc is still exiting: only a desktop
        # that ends while Xvnc runs on is a logout.
        if (desktop is not None and await _first_exit(xvnc, desktop) == desktop
                and handle.xvnc_running() and not procs.is_exiting(handle.xvnc_pid or 0)):
            reason = EndReason.LOGOUT
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(xvnc, signal.SIGTERM)
        await _first_exit(xvnc)
        return reason
    finally:
        for fd in (xvnc, desktop):
            if fd is not None:
                os.close(fd)


async def _wait_polling(handle: Handle) -> EndReason:
    reason = EndReason.CRASHED
    while handle.xvnc_running() and handle.xvnc_pid is not None:
        if (reason != EndReason.LOGOUT and handle.desktop_pid is not None
                and not procs.is_running(handle.desktop_pid, handle.desktop_start)):
            procs.send([handle.xvnc_pid], signal.SIGTERM)
            reason = EndReason.LOGOUT
        await asyncio.sleep(0.5)
    return reason


def _open_pidfd(pid: int | None, started: int | None) -> int | None:
    """A pidfd for the process, or None if it is gone (or the pid now names another).

    OSError other than "no such process" means no pidfds here: the caller polls.
    """
    if pid is None:
        return None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if procs.is_running(pid, started):  # checked after opening: the fd pins this process
        return fd
    os.close(fd)
    return None


def _resolve(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


async def _first_exit(*pidfds: int) -> int:
    """Wait until one of the processes exits; return its pidfd."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    for fd in pidfds:
        loop.add_reader(fd, _resolve, done, fd)
    try:
        return await done
    finally:
        for fd in pidfds:
            loop.remove_reader(fd)
