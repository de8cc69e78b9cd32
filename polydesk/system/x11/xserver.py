"""The daemon's own small requests to a session's X server, over one ``Wire`` each.

Is the display up and does it take our cookie; how long since the last input
(MIT-SCREEN-SAVER); and Xvnc's run-time settings and viewers through its VNC
extension, which is what TigerVNC's ``vncconfig`` sends. Doing that here rather than
running ``vncconfig`` means the cookie only ever goes to the session's own Xvnc
(``peer``), never to whatever answers at a socket name, and no reply is read unbounded.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator, Mapping
from pathlib import Path

from polydesk.core.screen import Screen, Server
from polydesk.system.peer import PeerError
from polydesk.system.x11.xauth import X11Error
from polydesk.system.x11.xwire import Wire, WireError, pad

# The extension's name changed in TigerVNC 1.14; the requests used here did not.
VNC_EXTENSIONS = ("VNC-EXTENSION", "TIGERVNC")
_SET_PARAM, _GET_PARAM, _CONNECT = 0, 1, 7


@contextlib.contextmanager
def wire(screen: Screen, timeout: float = 5.0) -> Iterator[Wire]:
    """One connection to the screen's own X server; any failure is an X11Error."""
    try:
        conn = Wire(screen.display, Path(screen.xauthority), screen.server, timeout)
    except WireError as exc:
        raise X11Error(str(exc)) from exc
    try:
        yield conn
    except (WireError, OSError, struct.error, IndexError) as exc:
        raise X11Error(f"display {screen.display}: {exc}") from exc
    finally:
        conn.close()


def handshake(display: str, cookie: bytes, server: Server, timeout: float = 1.0) -> bool:
    """True once ``server`` answers on ``display`` and accepts ``cookie``; False while it
    does not listen yet. A display served by another process raises PeerError."""
    try:
        Wire(display, Path("/nonexistent"), server, timeout, cookie=cookie).close()
    except WireError as exc:
        if isinstance(exc.__cause__, PeerError):
            raise exc.__cause__ from exc
        return False
    return True


def idle_ms(screen: Screen, timeout: float = 2.0) -> int:
    """Milliseconds since the last input, from the MIT-SCREEN-SAVER extension."""
    with wire(screen, timeout) as conn:
        extension = conn.query_extension("MIT-SCREEN-SAVER")
        if extension is None:
            raise X11Error(f"display {screen.display} has no MIT-SCREEN-SAVER extension")
        info = conn.call(struct.pack("<BBHI", extension.opcode, 1, 2, conn.setup.root))
        return int(struct.unpack_from("<I", info, 16)[0])


def _vnc_opcode(conn: Wire, display: str) -> int:
    for name in VNC_EXTENSIONS:
        extension = conn.query_extension(name)
        if extension is not None:
            return extension.opcode
    raise X11Error(f"display {display} is not an Xvnc (no VNC extension)")


def _vnc_request(opcode: int, minor: int, text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 255:
        raise X11Error(f"VNC extension argument too long: {text[:40]!r}...")
    return struct.pack("<BBHBxxx", opcode, minor, 2 + len(pad(raw)) // 4, len(raw)) + pad(raw)


def set_vnc_params(screen: Screen, params: Mapping[str, str | int]) -> None:
    """Set Xvnc run-time parameters (each must be in its ``-AllowOverride``)."""
    with wire(screen) as conn:
        opcode = _vnc_opcode(conn, screen.display)
        for name, value in params.items():
            reply = conn.call(_vnc_request(opcode, _SET_PARAM, f"{name}={value}"))
            if not reply[1]:
                raise X11Error(f"display {screen.display} refused {name}={value}")


def vnc_params(screen: Screen, names: list[str]) -> dict[str, str]:
    """The current values of Xvnc parameters, as Xvnc prints them ("0"/"1" for booleans)."""
    values = {}
    with wire(screen) as conn:
        opcode = _vnc_opcode(conn, screen.display)
        for name in names:
            reply = conn.call(_vnc_request(opcode, _GET_PARAM, name))
            if not reply[1]:
                raise X11Error(f"display {screen.display} has no parameter {name}")
            length = struct.unpack_from("<H", reply, 8)[0]
            values[name] = reply[32:32 + length].decode(errors="replace")
    return values


def disconnect_viewers(screen: Screen) -> None:
    """Close every VNC viewer of the session (``vncconfig -disconnect``: Connect to "")."""
    with wire(screen) as conn:
        opcode = _vnc_opcode(conn, screen.display)
        conn.call(_vnc_request(opcode, _CONNECT, ""))
