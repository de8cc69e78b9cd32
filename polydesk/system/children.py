"""The processes a backend started itself (Xvnc, desktops, helper windows), reaped as they exit.

A child that exits must be waited for, or it stays a zombie; a ``Popen`` dropped while its
process runs warns at garbage collection. Each backend keeps its children here: watched
through a pidfd on the event loop (no thread per child), reaped from any thread, and at
``close`` (daemon shutdown) parked while they keep running on purpose: a session and its
cover window outlive the daemon.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import threading

# Children of closed owners still running on purpose. One list for the whole process: an
# owner made after (a restarted backend in the same process) reaps them as they exit.
_LEFT_RUNNING: list[subprocess.Popen[bytes]] = []
_LEFT_LOCK = threading.Lock()


class Children:
    """One backend's children; ``own`` and ``reap`` from any thread, the rest in the loop's."""

    def __init__(self) -> None:
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()  # start() and end() of the backends work in threads
        self._pidfds: dict[int, int] = {}  # child pid -> pidfd watched by the loop
        self._loop: asyncio.AbstractEventLoop | None = None

    def own(self, proc: subprocess.Popen[bytes]) -> None:
        with self._lock:
            self._procs[proc.pid] = proc

    def owned(self) -> list[subprocess.Popen[bytes]]:
        with self._lock, _LEFT_LOCK:
            return [*self._procs.values(), *_LEFT_RUNNING]

    def watch(self, pid: int) -> None:
        """In the loop's thread: reap the child ``pid`` as soon as it exits."""
        self._loop = asyncio.get_running_loop()
        with self._lock:
            proc = self._procs.get(pid)
        if proc is None or pid in self._pidfds:
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return  # no pidfds (kernel < 5.3): reap() at the next call does it
        self._pidfds[pid] = fd
        self._loop.add_reader(fd, self._exited, pid)

    def _exited(self, pid: int) -> None:
        """In the loop's thread: reap the child and stop watching it."""
        self._unwatch(pid)
        with self._lock:
            proc = self._procs.pop(pid, None)
        if proc is not None:
            proc.poll()

    def _unwatch(self, pid: int) -> None:
        fd = self._pidfds.pop(pid, None)
        if fd is not None:
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)

    def reap(self) -> None:
        """From any thread: reap whichever children have exited (no bookkeeping changes)."""
        for proc in self.owned():
            proc.poll()

    def collect(self) -> None:
        """In the loop's thread: reap and forget every child that has exited."""
        self.reap()
        for proc in self.owned():
            if proc.returncode is not None:
                self._exited(proc.pid)
        with _LEFT_LOCK:
            _LEFT_RUNNING[:] = [proc for proc in _LEFT_RUNNING if proc.returncode is None]

    def close(self) -> None:
        """Stop watching; the children still running are parked, not dropped."""
        for pid in list(self._pidfds):
            self._unwatch(pid)
        self.reap()
        with self._lock, _LEFT_LOCK:
            _LEFT_RUNNING.extend(proc for proc in self._procs.values() if proc.returncode is None)
            self._procs.clear()
