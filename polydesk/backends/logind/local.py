"""What the logind backend reads and starts on this machine, beside D-Bus.

- an X11 session's display and cookie, from its processes' environment (``find_screen``);
- a notice on a text session's terminal (``write_terminal``);
- helper windows (cover, notice, message: ``python -m polydesk.system.x11.windows``) and their records.

Polydesk never reads a cookie file the session's user does not own: the user controls
their processes' environment, so an ``XAUTHORITY`` naming someone else's file would
otherwise let them show another display as theirs. The cookie is copied into a
root-only file and only that copy is used.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from polydesk.backends.logind.dbus import SessionInfo
from polydesk.core.screen import Screen
from polydesk.system import processes as procs
from polydesk.system.x11 import xauth

TTY_NAME = re.compile(r"(tty[0-9]+|pts/[0-9]+)")
MAX_ENVIRON = 1 << 20
MAX_PROCESSES_SCANNED = 64


def kind_of(info: SessionInfo) -> str:
    """x11, wayland, tty ... as logind says."""
    return info.type or "unspecified"


# ---------------------------------------------------------------- finding the X display


def find_screen(info: SessionInfo, folder: Path) -> tuple[Screen | None, str | None]:
    """(the session's screen, None) or (None, why there is none)."""
    if info.type == "wayland":
        # Wayland compositors show their picture to no other client (unlike X11).
        return None, "Wayland session: Wayland lets no other program see its screen"
    if info.type != "x11":
        return None, f"Text session ({kind_of(info)}): no screen to show"
    wanted = _local_display(info.display)
    for env in _environments(info):
        display = _local_display(env.get("DISPLAY", ""))
        if display is None or (wanted is not None and display[1] != wanted[1]):
            continue
        cookie = _cookie_for(env.get("XAUTHORITY", ""), display[1], info.uid)
        if cookie is not None:
            return _keep_cookie(folder, display, cookie), None
    # Neither the leader nor any process of the session has DISPLAY and an XAUTHORITY file
    # of the user's own (or root's).
    return None, "X11 session: its display and X cookie were not found"


def _local_display(value: str) -> tuple[str, int] | None:
    """":N" or ":N.S" (a local server); anything else (localhost:10.0 of SSH forwarding) is not ours."""
    try:
        return value, xauth.display_number(value)
    except ValueError:
        return None


def _environments(info: SessionInfo) -> Iterator[dict[str, str]]:
    """The leader's environment first, then those of the session's other processes."""
    seen = 0
    for pid in [info.leader, *session_pids(info.id, 0)]:
        if pid <= 1 or seen >= MAX_PROCESSES_SCANNED:
            continue
        seen += 1
        env = read_environ(pid)
        if env:
            yield env


def read_environ(pid: int) -> dict[str, str]:
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            raw = file.read(MAX_ENVIRON)
    except OSError:
        return {}
    env = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep:
            env[name.decode(errors="replace")] = value.decode(errors="replace")
    return env


def _cookie_for(path: str, number: int, uid: int) -> bytes | None:
    """The MIT cookie for display ``number`` in ``path``, if the file is the user's (or root's)."""
    if not path.startswith("/"):
        return None
    try:
        # O_NONBLOCK: a FIFO planted as XAUTHORITY must not hang the daemon.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid not in (uid, 0):
            return None
        raw = file.read(65536)
    return xauth.cookie_in(raw, number)


def _keep_cookie(folder: Path, display: tuple[str, int], cookie: bytes) -> Screen:
    """A root-only copy of the cookie: the user cannot change what the daemon then reads."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / "Xauthority"
    data = xauth.xauthority_bytes(display[1], cookie)
    with contextlib.suppress(OSError):
        if target.read_bytes() == data:
            return Screen(display[0], str(target))
    temporary = folder / f".Xauthority.{os.getpid()}"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(temporary, target)
    return Screen(display[0], str(target))


def session_pids(logind_id: str, leader: int) -> list[int]:
    """The processes in the session's scope (``session-<id>.scope``), plus its leader."""
    found = {leader} if leader > 1 and procs.is_running(leader) else set()
    marker = f"/session-{logind_id}.scope"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as file:
                lines = file.read()
        except OSError:
            continue
        if any(line.endswith(marker) or f"{marker}/" in line for line in lines.splitlines()):
            found.add(int(entry))
    return sorted(pid for pid in found if procs.is_running(pid))


def comm(pid: int) -> str:
    """The process's executable name as the kernel keeps it (not its argv[0], which it may set)."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- terminals


def write_terminal(tty: str, text: str) -> None:
    """Write a notice on the session's terminal, as wall(1) does."""
    if not TTY_NAME.fullmatch(tty):
        raise OSError(f"not a terminal name: {tty!r}")
    fd = os.open(f"/dev/{tty}", os.O_WRONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISCHR(os.fstat(fd).st_mode):
            raise OSError(f"/dev/{tty} is not a terminal")
        body = text.replace("\r", "").replace("\n", "\r\n")
        os.write(fd, f"\r\n\a*** Polydesk: {body}\r\n".encode())
    finally:
        os.close(fd)
