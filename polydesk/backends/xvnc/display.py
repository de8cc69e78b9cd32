"""A session's X display and RFB socket as files and names on this machine.

Xvnc listens on no TCP port. It holds both names of its display, the file socket and
the abstract one, and the daemon checks that it does: a name left free is one another
local user could bind, and every X client tries the abstract name first (issue 13). Its
RFB socket becomes root's once it listens, so only the daemon's bridge reaches it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
import time
from pathlib import Path

from polydesk.core.model import BackendError
from polydesk.core.screen import Server
from polydesk.system import peer
from polydesk.system import processes as procs

LOCK_FILE = "/tmp/.X{}-lock"


def ensure_x11_unix() -> None:
    """/tmp/.X11-unix must be root's and 1777 before any user's Xvnc starts, or the
    first one makes it theirs (and could then replace other sessions' sockets)."""
    path = peer.X11_UNIX
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if info.st_uid != 0 or info.st_gid != 0:
            os.fchown(fd, 0, 0)
        if stat.S_IMODE(info.st_mode) != 0o1777:
            os.fchmod(fd, 0o1777)
    finally:
        os.close(fd)


def claim_names(number: int, server: Server) -> None:
    """Both names of the display must be Xvnc's: a free abstract name is one another user
    could bind, and every X client of the session would hand its cookie to them."""
    holder = peer.abstract_listener(number)
    if holder is None or holder.pid != server.pid:
        who = "nobody" if holder is None else f"process {holder.pid} (uid {holder.uid})"
        raise BackendError(f"display :{number}: its abstract socket is held by {who}, not by its Xvnc")
    with peer.connect(str(x11_socket(number)), server, f"display :{number}", 1.0):
        pass


def secure_rfb(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Make the RFB socket root's: from now on only the daemon's bridge reaches the session.

    Xvnc (the user's) made it in a directory of the user's. The directory becomes root's
    0700, so no process of the user can reach the socket again. Anyone who connected in
    the moment before is found (an accepted connection shows the socket's path in
    /proc/net/unix) and the start fails rather than leave them a way in.
    """
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BackendError(f"Xvnc made no RFB socket at {path}")
        time.sleep(0.005)
    make_dir(path.parent, 0o700)  # first: then the user can no longer swap what is inside
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise BackendError(f"{path} is not a socket")
    os.chown(path, 0, 0, follow_symlinks=False)
    os.chmod(path, 0o600)
    connected = rfb_connections(path)
    if connected:
        raise BackendError(f"{connected} connection(s) reached {path} before it was secured")


def rfb_connections(path: Path) -> int:
    """How many connections to the Unix socket at ``path`` are open (not counting its listener)."""
    name = str(path)
    count = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            # Num RefCount Protocol Flags Type St Inode Path: St 01 is unconnected (listening).
            if len(fields) >= 8 and fields[7] == name and fields[5] != "01":
                count += 1
    return count


def x11_socket(number: int) -> Path:
    return peer.X11_UNIX / f"X{number}"


def display_free(number: int, abstract: set[str]) -> bool:
    return not (os.path.lexists(LOCK_FILE.format(number))
                or os.path.lexists(x11_socket(number))
                or f"@{x11_socket(number)}" in abstract)


def abstract_x_sockets() -> set[str]:
    """X servers other than ours may listen only on an abstract socket: avoid their numbers too."""
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {fields[-1] for fields in (line.split() for line in lines)
            if len(fields) >= 8 and fields[-1].startswith("@/tmp/.X11-unix/")}


def remove_display_files(number: int, xvnc_pid: int | None) -> None:
    if _lock_is_ours(number, xvnc_pid):
        x11_socket(number).unlink(missing_ok=True)
        Path(LOCK_FILE.format(number)).unlink(missing_ok=True)


def _lock_is_ours(number: int, pid: int | None) -> bool:
    """Only clean a display's files if its lock names our Xvnc, or no live process at all."""
    try:
        owner = int(Path(LOCK_FILE.format(number)).read_text().strip())
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return owner == pid or not procs.is_running(owner)


def make_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=mode)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)  # mkdir's mode is filtered by the umask
    finally:
        os.close(fd)
