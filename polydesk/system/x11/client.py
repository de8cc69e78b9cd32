"""python-xlib in the daemon: a connection to a session's own X server, and the polite
closing of its windows.

Synchronous; the backends run it in a thread. The connection starts as every one of the
daemon's does (``connect``: the server checked, the cookie given); the helper windows
(``windows``) open theirs here too. Cookies are in ``xauth``; the daemon's own small
requests (is it up, idle time, Xvnc's settings) go over ``xwire`` in ``xserver``.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from typing import Any

from Xlib import X, Xatom
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.protocol import event as xevent
from Xlib.support import unix_connect

from polydesk.core.screen import Screen
from polydesk.system.x11.connect import connect
from polydesk.system.x11.xauth import COOKIE_NAME, X11Error

HELPER_CLASS = "polydesk-helper"  # WM_CLASS instance of every helper window
HELPER_PROPERTY = "_POLYDESK_HELPER"  # and a property, so close_windows can skip them
# The most a python-xlib connection of the daemon reads from a session's X server: what
# listing and closing a desktop's windows needs, many times over. The server runs as the
# session's user and may say anything; past this the connection ends (a helper window,
# which lives longer, is a process of its own under a memory limit instead).
READ_BUDGET = 64 << 20


# ---------------------------------------------------------------- connecting


class _Budget(socket.socket):
    """A socket that stops reading once ``budget`` bytes have come in."""

    budget = READ_BUDGET

    def recv(self, size: int, flags: int = 0) -> bytes:
        data = super().recv(size, flags)
        self.budget -= len(data)
        if self.budget < 0:
            raise ConnectionAbortedError(f"the X server sent more than {READ_BUDGET} bytes")
        return data


_given = threading.local()  # the cookie and the checked socket of the connection being opened
_original_get_auth = unix_connect.get_auth
_original_get_socket = unix_connect.get_socket


def _get_auth(sock: Any, dname: str, protocol: Any, host: Any, dno: int) -> tuple[bytes, bytes]:
    """python-xlib reads the cookie from $XAUTHORITY; this lets each call pass its own.

    Setting the environment would race between threads serving different sessions.
    """
    cookie: bytes | None = getattr(_given, "cookie", None)
    if cookie is not None:
        return COOKIE_NAME, cookie
    result: tuple[bytes, bytes] = _original_get_auth(sock, dname, protocol, host, dno)
    return result


def _get_socket(dname: str, protocol: Any, host: Any, dno: int) -> socket.socket:
    """python-xlib would take whatever listens on the file socket, which the session's user
    may replace: it gets the socket ``open_display`` connected and checked instead."""
    sock: socket.socket | None = getattr(_given, "socket", None)
    if sock is not None:
        return sock
    result: socket.socket = _original_get_socket(dname, protocol, host, dno)
    return result


unix_connect.get_auth = _get_auth
unix_connect.get_socket = _get_socket


_original_base_init = xdisplay._BaseDisplay.__init__


def _base_init(self: Any, *args: Any, **kwargs: Any) -> None:
    """python-xlib keeps the extension event and error tables on the class, so every
    connection of the process shares them; a second server whose extensions have other
    event codes (an Xorg seat beside Xvnc) then breaks every later connection
    ("'type' object does not support item assignment"). Give each connection its own."""
    self.event_classes = xevent.event_class.copy()
    self.error_classes = xerror.xerror_class.copy()
    _original_base_init(self, *args, **kwargs)


xdisplay._BaseDisplay.__init__ = _base_init


def open_display(screen: Screen, timeout: float = 5.0, budget: bool = True) -> xdisplay.Display:
    """A python-xlib connection to the screen's own X server (checked), with its cookie.

    ``budget``: end the connection after READ_BUDGET bytes (short-lived connections of the
    daemon); without it, reads are unbounded and the socket blocks (a helper window).
    """
    try:
        raw, cookie = connect(screen, timeout)
    except (OSError, ValueError) as exc:
        raise X11Error(f"cannot open display {screen.display}: {exc}") from exc
    sock = _Budget(fileno=raw.detach()) if budget else socket.socket(fileno=raw.detach())
    sock.settimeout(timeout if budget else None)
    _given.socket = sock
    _given.cookie = cookie
    try:
        return xdisplay.Display(screen.display)
    except (xerror.DisplayError, OSError) as exc:
        sock.close()
        raise X11Error(f"cannot open display {screen.display}: {exc}") from exc
    finally:
        _given.cookie = None
        _given.socket = None


@contextlib.contextmanager
def connection(screen: Screen) -> Iterator[xdisplay.Display]:
    conn = open_display(screen)
    try:
        yield conn
    finally:
        conn.close()


# ---------------------------------------------------------------- windows


def client_windows(conn: xdisplay.Display) -> list[Any]:
    """Top-level client windows, without our own helper windows.

    The union of three views, because each misses some: the window manager's
    _NET_CLIENT_LIST; windows with WM_STATE under the root or a WM frame (ICCCM's
    definition of a client); and mapped, non-override-redirect children of the root,
    which is where a window the WM never managed (no WM, or mapped before it started) is.
    """
    root = conn.screen().root
    ids: dict[int, Any] = {}
    listed = root.get_full_property(conn.intern_atom("_NET_CLIENT_LIST"), Xatom.WINDOW)
    if listed is not None and listed.value is not None:
        for wid in listed.value:
            ids[int(wid)] = conn.create_resource_object("window", wid)
    for window in [*_windows_with_wm_state(conn, root), *_unmanaged(root)]:
        ids.setdefault(window.id, window)
    helper = conn.intern_atom(HELPER_PROPERTY)
    return [w for w in ids.values() if not _has_property(w, helper)]


def _windows_with_wm_state(conn: xdisplay.Display, root: Any) -> list[Any]:
    wm_state = conn.intern_atom("WM_STATE")
    found = []
    for child in root.query_tree().children:
        if _has_property(child, wm_state):
            found.append(child)
            continue
        with contextlib.suppress(xerror.XError):
            found.extend(g for g in child.query_tree().children if _has_property(g, wm_state))
    return found


def _unmanaged(root: Any) -> list[Any]:
    found = []
    for child in root.query_tree().children:
        with contextlib.suppress(xerror.XError):
            attributes = child.get_attributes()
            if attributes.map_state == X.IsViewable and not attributes.override_redirect:
                found.append(child)
    return found


def _has_property(window: Any, atom: int) -> bool:
    try:
        return window.get_property(atom, X.AnyPropertyType, 0, 0) is not None
    except xerror.XError:  # the window went away meanwhile
        return False


def _closable(conn: xdisplay.Display) -> list[Any]:
    """Client windows that take part in WM_DELETE_WINDOW."""
    delete = conn.intern_atom("WM_DELETE_WINDOW")
    closable = []
    for window in client_windows(conn):
        try:
            protocols = window.get_wm_protocols() or []
        except xerror.XError:
            continue
        if delete in protocols:
            closable.append(window)
    return closable


def close_windows(screen: Screen) -> int:
    """Send WM_DELETE_WINDOW to every client window that accepts it; return how many."""
    with connection(screen) as conn:
        protocols = conn.intern_atom("WM_PROTOCOLS")
        delete = conn.intern_atom("WM_DELETE_WINDOW")
        windows = _closable(conn)
        for window in windows:
            message = xevent.ClientMessage(
                window=window, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0])
            )
            with contextlib.suppress(xerror.XError):
                window.send_event(message, event_mask=0)
        conn.sync()
        return len(windows)


def open_windows(screen: Screen) -> int:
    """How many windows ``close_windows`` would still ask."""
    with connection(screen) as conn:
        return len(_closable(conn))
