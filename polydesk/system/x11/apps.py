"""The applications of a session as its X server knows them: top-level windows with their
title, class and the pid of the client that made them; and asking one window to close.

Over the daemon's own ``Wire`` (the server checked by its peer credentials, every reply
capped). The pid comes from the X-Resource extension (``XResQueryClientIds`` with the
LocalClientPID mask): the server read it from the client's socket (SO_PEERCRED) when it
connected, so no client can make it lie. ``_NET_WM_PID`` is a property any client may set
on any window to any number: it is used only where the server cannot tell (a window whose
client is gone but whose resources were kept, a client from another machine), and the
window says so (``pid_source``). Whoever signals a pid from here checks it first (same
uid, inside the session's tracking, same start time: ``backends.xvnc.apps``).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from polydesk.core.screen import Screen
from polydesk.system.x11.client import HELPER_PROPERTY
from polydesk.system.x11.xserver import wire
from polydesk.system.x11.xwire import Wire, WireError, pad

# Requests of the core protocol (opcodes) and the parts of their replies read here.
_GET_WINDOW_ATTRIBUTES, _QUERY_TREE, _INTERN_ATOM, _GET_PROPERTY, _SEND_EVENT = 3, 15, 16, 20, 25
_CLIENT_MESSAGE = 33
_XRES_QUERY_CLIENT_IDS = 4
_LOCAL_CLIENT_PID = 2  # XRes client id mask
_SUBSTRUCTURE = (1 << 19) | (1 << 20)  # SubstructureNotify | SubstructureRedirect
_MAX_WINDOWS = 1000  # top-level windows looked at; a desktop with more is hostile or broken
_MAX_TEXT = 1024  # bytes of a title or class read (4-byte units asked: 256)

PID_SERVER = "server"  # the X server's own knowledge of the client (XRes)
PID_PROPERTY = "_NET_WM_PID"  # what the window claims: anyone may set it


@dataclass(frozen=True)
class AppWindow:
    window: int
    title: str
    instance: str  # WM_CLASS: the instance and the class names
    klass: str
    pid: int | None
    pid_source: str | None  # PID_SERVER, PID_PROPERTY, or None (nobody can tell)


class Atoms:
    """Atoms by name, interned once per connection (only_if_exists: nothing is created)."""

    def __init__(self, conn: Wire) -> None:
        self.conn = conn
        self._known: dict[str, int] = {}

    def __getitem__(self, name: str) -> int:
        if name not in self._known:
            raw = name.encode()
            reply = self.conn.call(struct.pack("<BBHHxx", _INTERN_ATOM, 1, 2 + len(pad(raw)) // 4,
                                               len(raw)) + pad(raw))
            self._known[name] = struct.unpack_from("<I", reply, 8)[0]
        return self._known[name]


def get_property(conn: Wire, window: int, atom: int,
                 longs: int = _MAX_TEXT // 4) -> tuple[int, int, bytes] | None:
    """(type, format, value) of a window's property, at most ``longs`` 4-byte units; None if
    the window has no such property (or is gone)."""
    if atom == 0:
        return None
    try:
        reply = conn.call(struct.pack("<BBHIIIII", _GET_PROPERTY, 0, 6, window, atom, 0, 0, longs))
    except WireError as exc:
        if "X error 3 " in str(exc):  # BadWindow: it went away meanwhile
            return None
        raise
    fmt, kind = reply[1], struct.unpack_from("<I", reply, 8)[0]
    if kind == 0:
        return None
    items = struct.unpack_from("<I", reply, 16)[0]
    return kind, fmt, reply[32:32 + items * (fmt // 8)]


def _cardinals(value: tuple[int, int, bytes] | None) -> list[int]:
    if value is None or value[1] != 32:
        return []
    raw = value[2]
    return list(struct.unpack(f"<{len(raw) // 4}I", raw[:len(raw) // 4 * 4]))


def _children(conn: Wire, window: int) -> list[int]:
    try:
        reply = conn.call(struct.pack("<BxHI", _QUERY_TREE, 2, window))
    except WireError as exc:
        if "X error 3 " in str(exc):
            return []
        raise
    count = min(struct.unpack_from("<H", reply, 16)[0], _MAX_WINDOWS)
    return list(struct.unpack_from(f"<{count}I", reply, 32))


def _viewable(conn: Wire, window: int) -> bool:
    """Mapped and viewable, and not override-redirect (a menu or tooltip, not an application)."""
    try:
        reply = conn.call(struct.pack("<BxHI", _GET_WINDOW_ATTRIBUTES, 2, window))
    except WireError as exc:
        if "X error 3 " in str(exc):
            return False
        raise
    return reply[26] == 2 and not reply[27]


def top_windows(conn: Wire, atoms: Atoms) -> list[int]:
    """Top-level client windows, as ``client.client_windows`` finds them (the window manager's
    list, ICCCM clients under the root or a frame, and unmanaged mapped windows that have a
    WM_CLASS), without Polydesk's own helper windows."""
    root = conn.setup.root
    found = dict.fromkeys(_cardinals(get_property(conn, root, atoms["_NET_CLIENT_LIST"], _MAX_WINDOWS)))
    wm_state, wm_class = atoms["WM_STATE"], atoms["WM_CLASS"]
    for child in _children(conn, root):
        if get_property(conn, child, wm_state, 1) is not None:
            found.setdefault(child)
            continue
        inner = [g for g in _children(conn, child) if get_property(conn, g, wm_state, 1) is not None]
        for grandchild in inner:
            found.setdefault(grandchild)
        if not inner and _viewable(conn, child) and get_property(conn, child, wm_class, 1) is not None:
            found.setdefault(child)
    helper = atoms[HELPER_PROPERTY]
    return [w for w in list(found)[:_MAX_WINDOWS] if get_property(conn, w, helper, 1) is None]


def client_pids(conn: Wire, windows: list[int]) -> dict[int, int]:
    """The pid of the client that made each window, as the X server knows it (XRes); windows
    whose server cannot tell (its client gone, or not local) are left out."""
    extension = conn.query_extension("X-Resource")
    if extension is None or not windows:
        return {}
    pids: dict[int, int] = {}
    for start in range(0, len(windows), 100):  # one request per hundred: each stays small
        chunk = windows[start:start + 100]
        specs = b"".join(struct.pack("<II", w, _LOCAL_CLIENT_PID) for w in chunk)
        reply = conn.call(struct.pack("<BBHI", extension.opcode, _XRES_QUERY_CLIENT_IDS,
                                      2 + 2 * len(chunk), len(chunk)) + specs)
        count = struct.unpack_from("<I", reply, 8)[0]
        offset = 32
        # The server answers with the client's base id: a window's id less its resource bits.
        mask = conn.setup.id_mask
        by_client: dict[int, int] = {}
        for _ in range(min(count, len(chunk))):
            client, kind, length = struct.unpack_from("<III", reply, offset)
            offset += 12
            if kind == _LOCAL_CLIENT_PID and length == 4:
                by_client[client & ~mask] = struct.unpack_from("<I", reply, offset)[0]
            offset += len(pad(b"\0" * length))
        for window in chunk:
            if (window & ~mask) in by_client:
                pids[window] = by_client[window & ~mask]
    return pids


def _text(value: tuple[int, int, bytes] | None) -> str:
    if value is None or value[1] != 8:
        return ""
    return value[2].split(b"\0")[0].decode("utf-8", errors="replace")


def windows_of(conn: Wire) -> list[AppWindow]:
    atoms = Atoms(conn)
    windows = top_windows(conn, atoms)
    known = client_pids(conn, windows)
    listed = []
    for window in windows:
        title = _text(get_property(conn, window, atoms["_NET_WM_NAME"])) or _text(
            get_property(conn, window, atoms["WM_NAME"]))
        klass = get_property(conn, window, atoms["WM_CLASS"])
        names = klass[2].split(b"\0") if klass is not None and klass[1] == 8 else []
        instance = names[0].decode(errors="replace") if names else ""
        class_name = names[1].decode(errors="replace") if len(names) > 1 else ""
        pid: int | None = known.get(window)
        source: str | None = PID_SERVER if pid else None
        if not pid:
            claimed = _cardinals(get_property(conn, window, atoms["_NET_WM_PID"], 1))
            pid, source = (claimed[0], PID_PROPERTY) if claimed and claimed[0] > 0 else (None, None)
        listed.append(AppWindow(window, title, instance, class_name, pid, source))
    return listed


def list_windows(screen: Screen) -> list[AppWindow]:
    """The application windows of the screen's desktop (an X11Error if it cannot be read)."""
    with wire(screen) as conn:
        return windows_of(conn)


def close_window(screen: Screen, window: int) -> None:
    """Ask ``window`` to close: through the window manager (``_NET_CLOSE_WINDOW``) where it
    says it supports that, else the window itself (``WM_DELETE_WINDOW``). Only asks."""
    with wire(screen) as conn:
        atoms = Atoms(conn)
        root = conn.setup.root
        supported = _cardinals(get_property(conn, root, atoms["_NET_SUPPORTED"], 1024))
        close = atoms["_NET_CLOSE_WINDOW"]
        if close and close in supported:
            # source indication 2: a pager or other tool acting for the user (EWMH)
            event = _client_message(window, close, (0, 2, 0, 0, 0))
            conn.send(struct.pack("<BBHII", _SEND_EVENT, 0, 11, root, _SUBSTRUCTURE) + event)
        else:
            event = _client_message(window, atoms["WM_PROTOCOLS"], (atoms["WM_DELETE_WINDOW"], 0, 0, 0, 0))
            conn.send(struct.pack("<BBHII", _SEND_EVENT, 0, 11, window, 0) + event)
        conn.sync()


def _client_message(window: int, kind: int, data: tuple[int, int, int, int, int]) -> bytes:
    return struct.pack("<BBHII5I", _CLIENT_MESSAGE, 32, 0, window, kind, *data)
