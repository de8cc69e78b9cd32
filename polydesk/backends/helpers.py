"""Helper windows: the small root processes that draw in a session (notice, cover, message).

Each runs ``python -m polydesk.system.x11.windows KIND`` with the session's cookie, in its own
process session so it outlives a daemon restart, and leaves a record ``KIND-PID`` (pid and
start time) in ``FOLDER/helpers`` so the next daemon can find and stop it. Shared by
every backend that has an X display to draw on (``show_helper``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import polydesk
from polydesk.core import i18n
from polydesk.core.model import BackendError, Session
from polydesk.core.screen import Screen
from polydesk.system import processes as procs
from polydesk.system.children import Children
from polydesk.system.x11.xauth import X11Error

T = TypeVar("T")
READY_TIMEOUT = 10.0  # seconds a helper window may take to come up (a loaded machine, a slow X server)


def helper_language(session: Session) -> str:
    """The language of a helper window's own words (its title, its button): the session's
    user's, as the manager's texts for that session (i18n.session_language)."""
    return i18n.session_language(session.language, session.user)


def spawn_helper(folder: Path, screen: Screen, kind: str, args: list[str],
                 wait_ready: bool, language: str) -> subprocess.Popen[bytes]:
    """Start ``python -m polydesk.system.x11.windows KIND`` (root, the copied cookie, its own session),
    speaking ``language`` (helper_language)."""
    records = folder / "helpers"
    records.mkdir(parents=True, exist_ok=True, mode=0o700)
    argv = [sys.executable, "-m", "polydesk.system.x11.windows", "--display", screen.display,
            "--xauthority", screen.xauthority]
    if screen.server_pid is not None:
        argv += ["--server-pid", str(screen.server_pid)]
    if screen.server_start is not None:
        argv += ["--server-start", str(screen.server_start)]
    argv += [kind, *args]
    env = {
        "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1",
        "POLYDESK_LANGUAGE": language,  # of the window's own words (its title, its button)
        "PYTHONPATH": str(Path(polydesk.__file__).resolve().parent.parent),
    }
    out = os.open(folder / "helpers.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if wait_ready else out, stderr=out,
            env=env, cwd="/", start_new_session=True, close_fds=True,
        )
    finally:
        os.close(out)
    (records / f"{kind}-{proc.pid}").write_text(f"{proc.pid} {procs.start_time(proc.pid)}\n")
    return proc


async def show_helper(folder: Path, screen: Screen, kind: str, args: list[str], language: str,
                      children: Children, who: str, wait_ready: bool = False) -> None:
    """Start a helper window and own it in ``children``; with ``wait_ready``, return only once
    its window is up (it says "ready" on its stdout), else BackendError naming ``who``."""
    children.collect()
    proc = await asyncio.to_thread(spawn_helper, folder, screen, kind, args, wait_ready, language)
    children.own(proc)
    children.watch(proc.pid)
    if proc.stdout is None:
        return
    reader = asyncio.ensure_future(asyncio.to_thread(proc.stdout.readline))
    done, _ = await asyncio.wait({reader}, timeout=READY_TIMEOUT)
    if not done:
        await asyncio.to_thread(stop_helpers, folder, kind)  # its pipe closes: the read ends
    line = await reader
    proc.stdout.close()
    if line != b"ready\n":
        await asyncio.to_thread(stop_helpers, folder, kind)
        raise BackendError(f"{who}: the {kind} window did not appear on {screen.display}: "
                           f"{tail(folder / 'helpers.log')}")


def helpers(folder: Path, kind: str | None = None) -> list[tuple[Path, int, int]]:
    """(record, pid, start time) of the helper windows still running; stale records go."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        for record in (folder / "helpers").iterdir():
            if kind is not None and not record.name.startswith(f"{kind}-"):
                continue
            try:
                pid, started = (int(v) for v in record.read_text().split())
            except ValueError:
                record.unlink(missing_ok=True)
                continue
            if procs.is_running(pid, started):
                found.append((record, pid, started))
            else:
                record.unlink(missing_ok=True)
    return found


def stop_helpers(folder: Path, kind: str | None = None) -> None:
    """SIGTERM the helper windows (of one kind); SIGKILL any still there after a second."""
    running = helpers(folder, kind)
    procs.send((pid for _, pid, _ in running), signal.SIGTERM)
    deadline = time.monotonic() + 1.0
    for record, pid, started in running:
        while procs.is_running(pid, started) and time.monotonic() < deadline:
            time.sleep(0.01)
        if procs.is_running(pid, started):
            procs.send([pid], signal.SIGKILL)
        record.unlink(missing_ok=True)


def tail(path: Path, lines: int = 5) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return " | ".join(line for line in text.strip().splitlines()[-lines:] if line.strip())


async def on_screen(function: Callable[[Screen], T], screen: Screen, session_id: str) -> T:
    """Run an X call on a session's screen in a thread; X errors become BackendError."""
    try:
        return await asyncio.to_thread(function, screen)
    except (X11Error, OSError) as exc:
        raise BackendError(f"session {session_id}: {exc}") from exc
    except Exception as exc:  # python-xlib raises its own zoo on a dying connection
        raise BackendError(f"session {session_id}: X error: {exc!r}") from exc
