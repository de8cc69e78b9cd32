"""Connecting to a session's own servers, and nothing that merely took their names.

A session's X server and RFB server run as the session's user, so the user owns their
sockets: they may rename a socket file and put up a server of their own in its place, and
any local user may bind an abstract name nobody holds. The daemon runs as root and talks
to these servers with the session's cookie, so it must know it reached the real one: every
connection here checks the listening process (``SO_PEERCRED``: the pid that called
``listen``) against the server the backend started, and its start time, so a reused pid is
not mistaken for it.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from pathlib import Path

from polydesk.core.screen import Server
from polydesk.system import processes as procs

X11_UNIX = Path("/tmp/.X11-unix")


class PeerError(ConnectionError):
    """The socket answered, but not from the server the session runs."""


@dataclass(frozen=True)
class Credentials:
    pid: int
    uid: int
    gid: int


def credentials(sock: socket.socket) -> Credentials:
    """Who listens at the other end of a connected Unix socket (as the kernel recorded it)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return Credentials(pid, uid, gid)


def check(sock: socket.socket, server: Server, what: str) -> None:
    """Raise PeerError unless ``sock``'s peer is ``server`` (no pid given: not checked)."""
    if server.pid is None:
        return
    peer = credentials(sock)
    if peer.pid != server.pid or not procs.is_running(server.pid, server.start):
        raise PeerError(f"{what} is served by process {peer.pid} (uid {peer.uid}), "
                        f"not by the session's server (pid {server.pid})")


def connect(address: str | bytes, server: Server, what: str, timeout: float) -> socket.socket:
    """A blocking Unix stream socket to ``address`` (a path, or ``\\0name``) checked to be ``server``."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        sock.settimeout(timeout)
        sock.connect(address)
        check(sock, server, what)
    except BaseException:
        sock.close()
        raise
    return sock


def display_addresses(number: int) -> tuple[str, str]:
    """Where an X client looks for display ``number``: the abstract name, then the file."""
    path = str(X11_UNIX / f"X{number}")
    return "\0" + path, path


def connect_display(number: int, server: Server, timeout: float) -> socket.socket:
    """A connection to display ``number``'s X server, checked to be ``server``.

    The abstract name first, as libxcb does (a user cannot rename it under the server);
    the file socket when the server does not hold the abstract name.
    """
    abstract, path = display_addresses(number)
    try:
        return connect(abstract, server, f"display :{number}", timeout)
    except (ConnectionRefusedError, FileNotFoundError):
        return connect(path, server, f"display :{number}", timeout)


def abstract_listener(number: int) -> Credentials | None:
    """Who holds display ``number``'s abstract name (None: nobody)."""
    abstract, _ = display_addresses(number)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(1.0)
            sock.connect(abstract)
            return credentials(sock)
    except (ConnectionRefusedError, FileNotFoundError):
        return None
