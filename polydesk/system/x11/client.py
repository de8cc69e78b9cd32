"""python-xlib for the hosts: polite closing of windows, and the helper windows.

Two halves:

- in-process functions (synchronous; the host runs them in a thread): open a
  python-xlib connection to a session's own X server (``peer``) with its cookie,
  ask windows to close, count them;
- small helper programs, each its own process so a slow or stuck X server never
  stalls the daemon: ``python -m polydesk.system.x11.client notice|cover|message ...``.
  They run as root with the session's cookie under a memory limit, mark their
  windows so ``close_windows`` leaves them alone, and exit when the display goes away.

Cookies are in ``xauth``; the daemon's own small requests (is it up, idle time,
Xvnc's settings) go over ``xwire`` in ``xserver``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from Xlib import X, Xatom
from Xlib import display as xdisplay
from Xlib import error as xerror
from Xlib.protocol import event as xevent
from Xlib.support import unix_connect

from polydesk.core.i18n import DEFAULT, normalize, translations
from polydesk.core.screen import Screen
from polydesk.system.peer import connect_display
from polydesk.system.x11.xauth import COOKIE_NAME, X11Error, display_number, read_cookie

if TYPE_CHECKING:
    from PIL import Image, ImageFont

HELPER_CLASS = "polydesk-helper"  # WM_CLASS instance of every helper window
HELPER_PROPERTY = "_POLYDESK_HELPER"  # and a property, so close_windows can skip them
FONT_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "DejaVuSans.ttf",
)
FONT_BOLD_FILES = (
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/TTF/DejaVuSans-Bold.ttf",
    "DejaVuSans-Bold.ttf",
)

# The most a python-xlib connection of the daemon reads from a session's X server: what
# listing and closing a desktop's windows needs, many times over. The server runs as the
# session's user and may say anything; past this the connection ends (a helper window,
# which lives longer, is a process of its own under a memory limit instead).
READ_BUDGET = 64 << 20
HELPER_MEMORY = 1 << 30  # address space of a helper window process


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
        raw = connect_display(display_number(screen.display), screen.server, timeout)
    except (OSError, ValueError) as exc:
        raise X11Error(f"cannot open display {screen.display}: {exc}") from exc
    sock = _Budget(fileno=raw.detach()) if budget else socket.socket(fileno=raw.detach())
    sock.settimeout(timeout if budget else None)
    _given.socket = sock
    try:
        _given.cookie = read_cookie(Path(screen.xauthority))
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


# ================================================================ helper programs


def _(message: str) -> str:
    """A helper window's own words, in the session's language the daemon passes down
    (POLYDESK_LANGUAGE, helpers.helper_language): the helper's LANG is C.UTF-8 whatever the daemon's."""
    language = normalize(os.environ.get("POLYDESK_LANGUAGE", "")) or DEFAULT
    return translations(language).gettext(message)


@dataclass(frozen=True)
class Colours:
    background: tuple[int, int, int]
    foreground: tuple[int, int, int]
    accent: tuple[int, int, int]


COVER = Colours((24, 32, 48), (240, 240, 240), (120, 160, 220))
NOTICE = Colours((120, 30, 30), (255, 255, 255), (255, 220, 120))
MESSAGE = Colours((245, 245, 245), (20, 20, 20), (40, 100, 200))


def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    from PIL import ImageFont

    for name in FONT_BOLD_FILES if bold else FONT_FILES:
        with contextlib.suppress(OSError):
            return ImageFont.truetype(name, size)
    return ImageFont.load_default(size)


def wrap(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` pixels (keeping its own line breaks)."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and font.getlength(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


@dataclass(frozen=True)
class Block:
    """A run of text drawn centred: wrapped to the panel, one size, one colour."""

    text: str
    size: int
    colour: tuple[int, int, int]
    bold: bool = False


def render(width: int, height: int | None, blocks: Sequence[Block], background: tuple[int, int, int],
           padding: int = 32, gap: int = 18) -> Image.Image:
    """Draw ``blocks`` centred, one under the other, on a ``width`` wide image.

    With ``height`` None the image is as tall as the text; else the text is centred
    vertically in it. Pillow + DejaVu so any UTF-8 text ("Estação bloqueada") shows.
    """
    from PIL import Image, ImageDraw

    laid_out = []
    total = 0
    for block in blocks:
        font = _font(block.size, block.bold)
        lines = wrap(block.text, font, width - 2 * padding)
        line_height = int(block.size * 1.3)
        laid_out.append((block, font, lines, line_height))
        total += line_height * len(lines)
    total += gap * max(0, len(blocks) - 1)
    height = height or total + 2 * padding
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    y = (height - total) // 2
    for block, font, lines, line_height in laid_out:
        for line in lines:
            x = (width - font.getlength(line)) / 2
            draw.text((x, y), line, font=font, fill=block.colour)
            y += line_height
        y += gap
    return image


def image_pixmap(conn: xdisplay.Display, window: Any, image: Image.Image) -> Any:
    """Upload ``image`` into a pixmap (the window's background: the server repaints it)."""
    screen = conn.screen()
    depth = screen.root_depth
    formats = {f.depth: f.bits_per_pixel for f in conn.display.info.pixmap_formats}
    if formats.get(depth) != 32:
        raise X11Error(f"only 32-bit pixels are supported, the display has {formats.get(depth)}")
    raw_mode = "BGRX" if conn.display.info.image_byte_order == X.LSBFirst else "XRGB"
    width, height = image.size
    pixmap = window.create_pixmap(width, height, depth)
    gc = pixmap.create_gc()
    # One PutImage request may hold at most max_request_length words: send strips of rows.
    rows = max(1, (conn.display.info.max_request_length * 4 - 1024) // (width * 4))
    for top in range(0, height, rows):
        strip = image.crop((0, top, width, min(height, top + rows)))
        pixmap.put_image(gc, 0, top, width, strip.size[1], X.ZPixmap, depth, 0,
                         strip.tobytes("raw", raw_mode))
    gc.free()
    return pixmap


def _mark_helper(conn: xdisplay.Display, window: Any, title: str) -> None:
    window.set_wm_class(HELPER_CLASS, "Polydesk")
    window.set_wm_name(title)
    window.change_property(conn.intern_atom("_NET_WM_NAME"), conn.intern_atom("UTF8_STRING"), 8,
                           title.encode())
    window.change_property(conn.intern_atom(HELPER_PROPERTY), Xatom.CARDINAL, 32, [os.getpid()])


def _set_background(conn: xdisplay.Display, window: Any, image: Image.Image, old: Any = None) -> Any:
    pixmap = image_pixmap(conn, window, image)
    window.change_attributes(background_pixmap=pixmap)
    window.clear_area(0, 0, 0, 0)
    if old is not None:
        old.free()
    return pixmap


def _events(conn: xdisplay.Display, timeout: float) -> list[Any]:
    """The events that arrive within ``timeout`` seconds (python-xlib has no timed wait)."""
    if not conn.pending_events():
        ready, _, _ = select.select([conn.fileno()], [], [], timeout)
        if not ready:
            return []
    events = []
    while conn.pending_events():
        events.append(conn.next_event())
    return events


def _signal_ready() -> None:
    """Tell the daemon the window is up (it reads one line), then let go of the pipe."""
    with contextlib.suppress(OSError):
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


# ---------------------------------------------------------------- cover (block)


class Cover:
    """A full-screen override-redirect window that stays on top and holds the input grabs."""

    def __init__(self, conn: xdisplay.Display, message: str) -> None:
        self.conn = conn
        self.message = message
        self.root = conn.screen().root
        geometry = self.root.get_geometry()
        self.size = (geometry.width, geometry.height)
        self.window = self.root.create_window(
            0, 0, self.size[0], self.size[1], 0, conn.screen().root_depth,
            X.InputOutput, X.CopyFromParent,
            background_pixel=conn.screen().black_pixel, override_redirect=True,
            event_mask=X.VisibilityChangeMask | X.StructureNotifyMask,
        )
        _mark_helper(conn, self.window, _("Polydesk: blocked"))
        # Any window mapped, moved or restacked anywhere tells us to get back on top.
        self.root.change_attributes(event_mask=X.SubstructureNotifyMask | X.StructureNotifyMask)
        self.pixmap = _set_background(conn, self.window, self._image())
        self.window.map()
        self.window.raise_window()
        self.grabbed = False
        self.last_raise = 0.0

    def _image(self) -> Image.Image:
        width, height = self.size
        blocks = [Block(self.message, max(28, min(72, width // 18)), COVER.foreground, bold=True)]
        return render(width, height, blocks, COVER.background)

    def grab(self) -> None:
        """Take keyboard and pointer; another client may hold them for a moment, so retry."""
        if self.grabbed:
            return
        keyboard = self.window.grab_keyboard(False, X.GrabModeAsync, X.GrabModeAsync, X.CurrentTime)
        pointer = self.window.grab_pointer(False, 0, X.GrabModeAsync, X.GrabModeAsync, self.window,
                                           X.NONE, X.CurrentTime)
        self.grabbed = keyboard == X.GrabSuccess and pointer == X.GrabSuccess

    def on_top(self) -> None:
        now = time.monotonic()
        if now - self.last_raise > 0.02:  # never a raise war faster than 50/s
            self.window.raise_window()
            self.last_raise = now

    def handle(self, event: Any) -> None:
        if event.type == X.ConfigureNotify and event.window == self.root:
            self._resize(event.width, event.height)
        elif event.type == X.UnmapNotify and event.window == self.window:
            self.window.map()  # another client of the display unmapped us
            self.on_top()
        elif self._may_cover_us(event):
            self.on_top()

    def _may_cover_us(self, event: Any) -> bool:
        if event.type == X.VisibilityNotify:
            return bool(event.state != X.VisibilityUnobscured)
        return bool(event.type in (X.MapNotify, X.ConfigureNotify, X.CreateNotify)
                    and getattr(event, "window", None) != self.window)

    def _resize(self, width: int, height: int) -> None:
        """A viewer changed the desktop size: cover all of it again."""
        if (width, height) == self.size:
            return
        self.size = (width, height)
        self.window.configure(width=width, height=height)
        self.pixmap = _set_background(self.conn, self.window, self._image(), self.pixmap)

    def run(self) -> None:
        self.grab()
        self.conn.sync()
        _signal_ready()
        while True:
            for event in _events(self.conn, 0.5):
                self.handle(event)
            self.grab()
            self.on_top()  # also periodically: a missed event must not leave us under a window
            self.conn.flush()


# ---------------------------------------------------------------- log-off notice


class Notice:
    """A red panel at the top of the screen counting down to the log-off."""

    WIDTH = 640

    def __init__(self, conn: xdisplay.Display, text: str, seconds: int) -> None:
        self.conn = conn
        self.text = text
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        root = conn.screen().root
        self.screen_width = root.get_geometry().width
        image = self._image(seconds)
        self.height = image.size[1]
        self.window = root.create_window(
            (self.screen_width - self.WIDTH) // 2, 40, self.WIDTH, self.height, 2,
            conn.screen().root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=conn.screen().black_pixel, border_pixel=conn.screen().white_pixel,
            override_redirect=True, event_mask=X.VisibilityChangeMask,
        )
        _mark_helper(conn, self.window, _("Polydesk: log-off"))
        self.pixmap = _set_background(conn, self.window, image)
        self.window.map()
        self.window.raise_window()

    def remaining(self) -> int:
        return max(0, round(self.deadline - time.monotonic()))

    def _image(self, left: int) -> Image.Image:
        # The caller's text usually states the full grace period; keep it in step.
        text = re.sub(rf"\b{self.seconds}\b", str(left), self.text, count=1)
        minutes, seconds = divmod(left, 60)
        return render(self.WIDTH, None, [
            Block(text, 20, NOTICE.foreground),
            Block(f"{minutes}:{seconds:02d}", 44, NOTICE.accent, bold=True),
        ], NOTICE.background)

    def run(self) -> None:
        shown = self.seconds
        _signal_ready()
        # Past zero it stays, showing 0:00, until the log-off ends the session (which stops
        # it); the cap only matters if the log-off itself failed.
        while time.monotonic() < self.deadline + 60:
            for event in _events(self.conn, 0.25):
                if event.type == X.VisibilityNotify and event.state != X.VisibilityUnobscured:
                    self.window.raise_window()
            left = self.remaining()
            if left != shown:
                shown = left
                self.pixmap = _set_background(self.conn, self.window, self._image(left), self.pixmap)
                self.window.raise_window()
            self.conn.flush()


# ---------------------------------------------------------------- message


class Message:
    """A managed dialog with the text and an OK button; closes on OK, Enter, Escape or timeout."""

    WIDTH = 520
    BUTTON = (120, 40)

    def __init__(self, conn: xdisplay.Display, text: str, title: str, timeout: float | None,
                 index: int) -> None:
        self.conn = conn
        self.deadline = time.monotonic() + timeout if timeout else None
        root = conn.screen().root
        geometry = root.get_geometry()
        image = self._image(text)
        width, height = image.size
        # Each message a little lower and to the right of the one before: they stack visibly.
        x = max(0, (geometry.width - width) // 2 + 28 * (index % 8))
        y = max(0, (geometry.height - height) // 3 + 28 * (index % 8))
        self.button = ((width - self.BUTTON[0]) // 2, height - self.BUTTON[1] - 20, *self.BUTTON)
        self.window = root.create_window(
            x, y, width, height, 0, conn.screen().root_depth, X.InputOutput, X.CopyFromParent,
            background_pixel=conn.screen().white_pixel,
            event_mask=X.ButtonPressMask | X.KeyPressMask | X.StructureNotifyMask,
        )
        _mark_helper(conn, self.window, title)
        self.delete = conn.intern_atom("WM_DELETE_WINDOW")
        self.window.set_wm_protocols([self.delete])
        self.window.set_wm_normal_hints(flags=1 | 4 | 16 | 32, x=x, y=y,  # US/PPosition, P{Min,Max}Size
                                        min_width=width, min_height=height,
                                        max_width=width, max_height=height)
        self._set_atoms("_NET_WM_WINDOW_TYPE", ["_NET_WM_WINDOW_TYPE_DIALOG"])
        self._set_atoms("_NET_WM_STATE", ["_NET_WM_STATE_ABOVE"])
        self.pixmap = _set_background(conn, self.window, image)
        self.window.map()

    def _set_atoms(self, name: str, values: list[str]) -> None:
        self.window.change_property(self.conn.intern_atom(name), Xatom.ATOM, 32,
                                    [self.conn.intern_atom(v) for v in values])

    def _image(self, text: str) -> Image.Image:
        from PIL import ImageDraw

        body = render(self.WIDTH, None, [Block(text, 18, MESSAGE.foreground)], MESSAGE.background)
        image = body.crop((0, 0, self.WIDTH, body.size[1] + self.BUTTON[1] + 20))
        image.paste(MESSAGE.background, (0, body.size[1], self.WIDTH, image.size[1]))
        bx, by = (self.WIDTH - self.BUTTON[0]) // 2, body.size[1]
        draw = ImageDraw.Draw(image)
        draw.rounded_rectangle((bx, by, bx + self.BUTTON[0], by + self.BUTTON[1]), 6, fill=MESSAGE.accent)
        font = _font(18, bold=True)
        label = _("OK")
        draw.text((bx + (self.BUTTON[0] - font.getlength(label)) / 2, by + 9), label, font=font,
                  fill=(255, 255, 255))
        return image

    def _closes(self, event: Any) -> bool:
        if event.type == X.ClientMessage:
            return bool(event.data[1][0] == self.delete)
        if event.type == X.KeyPress:
            keysym: int = self.conn.keycode_to_keysym(event.detail, 0)
            return keysym in (0xFF0D, 0xFF1B, 0x20, 0xFF8D)  # Return, Escape, space, KP_Enter
        if event.type == X.ButtonPress:
            x, y, w, h = self.button
            return bool(x <= event.event_x < x + w and y <= event.event_y < y + h)
        return bool(event.type == X.DestroyNotify)

    def run(self) -> None:
        self.conn.sync()
        _signal_ready()
        while self.deadline is None or time.monotonic() < self.deadline:
            if any(self._closes(event) for event in _events(self.conn, 0.25)):
                return


# ---------------------------------------------------------------- entry point


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m polydesk.system.x11.client")
    parser.add_argument("--display", required=True)
    parser.add_argument("--xauthority", required=True, type=Path)
    parser.add_argument("--server-pid", type=int, default=None, help="the X server that must answer")
    parser.add_argument("--server-start", type=int, default=None, help="its start time (clock ticks)")
    commands = parser.add_subparsers(dest="command", required=True)
    cover = commands.add_parser("cover", help="cover the screen, hold the input (block)")
    cover.add_argument("--message", required=True)
    notice = commands.add_parser("notice", help="log-off countdown")
    notice.add_argument("--text", required=True)
    notice.add_argument("--seconds", required=True, type=int)
    message = commands.add_parser("message", help="a message with an OK button")
    message.add_argument("--text", required=True)
    message.add_argument("--title", default=None)
    message.add_argument("--timeout", type=float, default=None)
    message.add_argument("--index", type=int, default=0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # The X server is the session user's: whatever it sends, this root process stays small.
    resource.setrlimit(resource.RLIMIT_AS, (HELPER_MEMORY, HELPER_MEMORY))
    screen = Screen(args.display, str(args.xauthority), args.server_pid, args.server_start)
    try:
        conn = open_display(screen, budget=False)
    except X11Error as exc:
        print(exc, file=sys.stderr)
        return 1
    run: Callable[[], None]
    if args.command == "cover":
        run = Cover(conn, args.message).run
    elif args.command == "notice":
        run = Notice(conn, args.text, args.seconds).run
    else:
        run = Message(conn, args.text, args.title or _("Message"), args.timeout, args.index).run
    try:
        run()
    except MemoryError:
        print("the X server sent more than a helper window may hold", file=sys.stderr)
        return 1
    except (xerror.ConnectionClosedError, OSError):
        return 0  # the display went away: the session ended, nothing left to show
    finally:
        with contextlib.suppress(Exception):
            conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
