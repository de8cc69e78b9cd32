"""Where a session is reached: its X display (``Screen``), its RFB socket (``Endpoint``), and
the server process that must be the one answering at either (``Server``).

Pure values: the backends make them, the OS adapters (``system.peer``, ``system.x11``)
connect to them, the thumbnailer and the manager pass them along.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Server:
    """The process that must be listening: pid and start time (None: any, see ``system.peer.connect``)."""

    pid: int | None = None
    start: int | None = None


@dataclass(frozen=True)
class Screen:
    """Where a session's pixels can be read: an X display, the cookie file that opens it,
    and the X server process that must be the one answering."""

    display: str
    xauthority: str
    # The server's pid and start time; None where the backend cannot know them, as for a
    # display manager's own X server (then whoever answers at the display is taken).
    server_pid: int | None = None
    server_start: int | None = None

    @property
    def server(self) -> Server:
        """The X server that must answer at the display (any, without a pid)."""
        return Server(self.server_pid, self.server_start)


@dataclass(frozen=True)
class Endpoint:
    """A session's RFB server: its Unix socket, and the process that must be listening."""

    path: str
    server: Server
