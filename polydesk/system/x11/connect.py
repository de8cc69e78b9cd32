"""How every connection of the daemon to a session's X server starts, whichever client
speaks over it afterwards (python-xlib in ``client``, our own ``xwire``).

The socket goes only to the screen's own server (``peer``: the abstract name first, then
the file; the listening process checked), and the cookie comes from the screen's
Xauthority file, never from the environment (threads serve different sessions at once).
"""

from __future__ import annotations

import socket
from pathlib import Path

from polydesk.core.screen import Screen
from polydesk.system.peer import connect_display
from polydesk.system.x11.xauth import display_number, read_cookie


def connect(screen: Screen, timeout: float, cookie: bytes | None = None) -> tuple[socket.socket, bytes]:
    """A blocking socket to the screen's own X server, and the cookie that opens it
    (``cookie`` when given, else the first one in ``screen.xauthority``).

    Raises X11Error (no cookie in the file), PeerError (another process answers), ValueError
    (not a local display name) or another OSError, as they come: callers say it their way.
    """
    cookie = read_cookie(Path(screen.xauthority)) if cookie is None else cookie
    return connect_display(display_number(screen.display), screen.server, timeout), cookie
