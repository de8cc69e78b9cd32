"""The helper windows: small programs, each its own process so a slow or stuck X server
never stalls the daemon: ``python -m polydesk.system.x11.windows notice|cover|message ...``
(started by ``backends.helpers``).

They run as root with the session's cookie under a memory limit, mark their windows so
``client.close_windows`` leaves them alone, and exit when the display goes away.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import select
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from Xlib import X, Xatom
from Xlib import display as xdisplay
from Xlib import error as xerror

from polydesk.core.i18n import DEFAULT, normalize, translations
from polydesk.core.screen import Screen
from polydesk.system.x11.client import HELPER_CLASS, HELPER_PROPERTY, open_display
from polydesk.system.x11.drawing import Block, Colours, font, render
from polydesk.system.x11.xauth import X11Error

if TYPE_CHECKING:
    from PIL import Image

HELPER_MEMORY = 1 << 30  # address space of a helper window process


def _(message: str) -> str:
    """A helper window's own words, in the session's language the daemon passes down
    (POLYDESK_LANGUAGE, helpers.helper_language): the helper's LANG is C.UTF-8 whatever the daemon's."""
    language = normalize(os.environ.get("POLYDESK_LANGUAGE", "")) or DEFAULT
    return translations(language).gettext(message)


COVER = Colours((24, 32, 48), (240, 240, 240), (120, 160, 220))
NOTICE = Colours((120, 30, 30), (255, 255, 255), (255, 220, 120))
MESSAGE = Colours((245, 245, 245), (20, 20, 20), (40, 100, 200))


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
        face = font(18, bold=True)
        label = _("OK")
        draw.text((bx + (self.BUTTON[0] - face.getlength(label)) / 2, by + 9), label, font=face,
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
    parser = argparse.ArgumentParser(prog="python -m polydesk.system.x11.windows")
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
