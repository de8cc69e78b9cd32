"""Reading a session's screen cheaply: DAMAGE says what changed, MIT-SHM reads it.

One ``ScreenReader`` per watched session holds one python-xlib connection,
opened with the session's own cookie. On it:

- a DAMAGE object on the root window at level *NonEmpty*: the server sends one
  event when the screen goes from unchanged to changed, then nothing until we
  take the damage away (``DamageSubtract``). An unchanged screen costs nothing:
  no event, no wake-up, no request;
- an XFIXES region that ``changes()`` moves the damage into and fetches, so we
  learn *which* rectangles changed and read only those;
- a System V shared memory segment attached by the X server (MIT-SHM), so a
  read is one small request and the pixels land in our memory without passing
  through the socket. python-xlib has no MIT-SHM, so the four requests it needs
  are declared here; the segment comes from libc through ctypes. Measured on
  Xvnc 1.12 here: a 1280x800 screen costs 6.7 ms of CPU through ``GetImage``
  (python-xlib copies the 4 MB reply as it arrives) and 0.5 ms through MIT-SHM.

The segment is small (``SHM_BYTES``): a larger area is read in strips of rows,
so a hundred watched sessions keep a few tens of MB mapped, not 4 MB each.
Where the server lacks MIT-SHM (or refuses it) reads use ``GetImage``; where
it lacks DAMAGE, every ``changes()`` reports the whole screen and the caller
compares pixels, as before issue 5.

Not thread-safe: the thumbnailer uses a reader from one thread at a time, and
calls ``abort`` (which is) to unstick a read from a server that stopped answering.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import socket
import struct
from pathlib import Path
from typing import Any, cast

from PIL import Image
from Xlib import X
from Xlib import error as xerror
from Xlib.protocol import rq, structs

from polydesk.hosts.base import Screen

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom excluded)

SHM_BYTES = 256 * 1024
_ERRORS: tuple[type[BaseException], ...] = (xerror.XError, xerror.ConnectionClosedError, OSError)


class CaptureError(Exception):
    """The session's screen could not be read (display gone, cookie refused, odd pixel format)."""


# ---------------------------------------------------------------- protocol python-xlib lacks


class _ShmQueryVersion(rq.ReplyRequest):  # type: ignore[misc]
    _request = rq.Struct(rq.Card8("opcode"), rq.Opcode(0), rq.RequestLength())
    _reply = rq.Struct(
        rq.ReplyCode(), rq.Bool("shared_pixmaps"), rq.Card16("sequence_number"), rq.ReplyLength(),
        rq.Card16("major_version"), rq.Card16("minor_version"), rq.Card16("uid"), rq.Card16("gid"),
        rq.Card8("pixmap_format"), rq.Pad(15),
    )


class _ShmAttach(rq.Request):  # type: ignore[misc]
    _request = rq.Struct(
        rq.Card8("opcode"), rq.Opcode(1), rq.RequestLength(),
        rq.Card32("shmseg"), rq.Card32("shmid"), rq.Bool("read_only"), rq.Pad(3),
    )


class _ShmDetach(rq.Request):  # type: ignore[misc]
    _request = rq.Struct(rq.Card8("opcode"), rq.Opcode(2), rq.RequestLength(), rq.Card32("shmseg"))


class _ShmGetImage(rq.ReplyRequest):  # type: ignore[misc]
    _request = rq.Struct(
        rq.Card8("opcode"), rq.Opcode(4), rq.RequestLength(),
        rq.Drawable("drawable"), rq.Int16("x"), rq.Int16("y"), rq.Card16("width"), rq.Card16("height"),
        rq.Card32("plane_mask"), rq.Card8("format"), rq.Pad(3), rq.Card32("shmseg"), rq.Card32("offset"),
    )
    _reply = rq.Struct(
        rq.ReplyCode(), rq.Card8("depth"), rq.Card16("sequence_number"), rq.ReplyLength(),
        rq.Card32("visual"), rq.Card32("size"), rq.Pad(16),
    )


class _CreateRegion(rq.Request):  # type: ignore[misc]  # XFIXES 2.0
    _request = rq.Struct(
        rq.Card8("opcode"), rq.Opcode(5), rq.RequestLength(), rq.Card32("region"),
        rq.List("rectangles", structs.Rectangle),
    )


class _DestroyRegion(rq.Request):  # type: ignore[misc]
    _request = rq.Struct(rq.Card8("opcode"), rq.Opcode(10), rq.RequestLength(), rq.Card32("region"))


class _FetchRegion(rq.ReplyRequest):  # type: ignore[misc]
    _request = rq.Struct(rq.Card8("opcode"), rq.Opcode(19), rq.RequestLength(), rq.Card32("region"))
    _reply = rq.Struct(
        rq.ReplyCode(), rq.Pad(1), rq.Card16("sequence_number"), rq.ReplyLength(),
        rq.Object("extents", structs.Rectangle), rq.Pad(16), rq.List("rectangles", structs.Rectangle),
    )


# ---------------------------------------------------------------- System V shared memory


_IPC_PRIVATE, _IPC_CREAT, _IPC_RMID, _IPC_SET, _IPC_STAT = 0, 0o1000, 0, 1, 2
_SHMID_DS_SIZE = 256  # struct shmid_ds is 112 bytes on 64-bit Linux; room to spare


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
    libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
    libc.shmat.restype = ctypes.c_void_p
    libc.shmdt.argtypes = [ctypes.c_void_p]
    libc.shmctl.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p]
    return libc


class Segment:
    """A private shared memory segment that only we and one user's processes may attach.

    Marked for removal at once (Linux still lets the X server attach it by id), so it
    disappears with the last process that has it attached: a daemon killed with -9
    leaves nothing behind.
    """

    _lib: ctypes.CDLL | None = None

    def __init__(self, size: int, uid: int, gid: int) -> None:
        if Segment._lib is None:
            Segment._lib = _libc()
        lib = Segment._lib
        self.size = size
        self.id = lib.shmget(_IPC_PRIVATE, size, _IPC_CREAT | 0o600)
        if self.id < 0:
            raise OSError(ctypes.get_errno(), f"shmget: {os.strerror(ctypes.get_errno())}")
        try:
            address = lib.shmat(self.id, None, 0)
            if address in (None, ctypes.c_void_p(-1).value):
                raise OSError(ctypes.get_errno(), f"shmat: {os.strerror(ctypes.get_errno())}")
            self._address: int | None = address
            # The X server runs as the session's user and attaches the segment itself:
            # hand it to that user (mode stays 0600, so no one else can).
            ds = ctypes.create_string_buffer(_SHMID_DS_SIZE)
            if lib.shmctl(self.id, _IPC_STAT, ds) < 0:
                raise OSError(ctypes.get_errno(), "shmctl IPC_STAT")
            struct.pack_into("=II", ds, 4, uid, gid)  # struct ipc_perm: int key; uid_t uid; gid_t gid
            if lib.shmctl(self.id, _IPC_SET, ds) < 0:
                raise OSError(ctypes.get_errno(), "shmctl IPC_SET")
        finally:
            lib.shmctl(self.id, _IPC_RMID, None)
        self.buffer = (ctypes.c_char * size).from_address(address)

    def close(self) -> None:
        if self._address is not None and Segment._lib is not None:
            Segment._lib.shmdt(self._address)
            self._address = None


# ---------------------------------------------------------------- the reader


class ScreenReader:
    """One session's screen: what changed since the last look, and its pixels."""

    def __init__(self, screen: Screen, shm: bool = True, damage: bool = True) -> None:
        from polydesk.hosts.x11 import X11Error, open_display

        try:
            self._conn: Any = open_display(screen.display, Path(screen.xauthority))
        except (X11Error, xerror.XError, xerror.ConnectionClosedError, OSError) as exc:
            raise CaptureError(f"cannot open {screen.display}: {exc}") from exc
        self._errors: list[str] = []
        self._conn.set_error_handler(lambda error, request: self._errors.append(str(error)))
        self._segment: Segment | None = None
        self._shmseg = 0
        self._shm_opcode = 0
        self._damage = 0
        self._region = 0
        self.more = False  # damage arrived after the last changes(): look again
        try:
            self._root = self._conn.screen().root
            geometry = self._root.get_geometry()
            self.size: tuple[int, int] = (geometry.width, geometry.height)
            self._rawmode = _rawmode(self._conn)
            self._resized = False
            # A viewer may resize the desktop (RandR): then everything is read again.
            self._root.change_attributes(event_mask=X.StructureNotifyMask)
            if damage:
                self._start_damage()
            if shm and self._rawmode == "BGRX":
                self._start_shm()
        except _ERRORS as exc:
            self.close()
            raise CaptureError(f"cannot watch {screen.display}: {exc}") from exc

    @property
    def uses_damage(self) -> bool:
        return self._damage != 0

    @property
    def uses_shm(self) -> bool:
        return self._segment is not None

    def fileno(self) -> int | None:
        """Readable when the server has something to say (damage, a resize); None without
        DAMAGE: then only looking tells whether the screen changed."""
        return int(self._conn.fileno()) if self._damage else None

    def _start_damage(self) -> None:
        conn = self._conn
        if not (conn.has_extension("DAMAGE") and conn.has_extension("XFIXES")):
            return
        conn.xfixes_query_version()  # the server refuses XFIXES 2 requests before this
        conn.damage_query_version()
        self._region = conn.display.allocate_resource_id()
        _CreateRegion(display=conn.display, opcode=conn.display.get_extension_major("XFIXES"),
                      region=self._region, rectangles=[])
        from Xlib.ext import damage

        self._damage = self._root.damage_create(damage.DamageReportNonEmpty)
        conn.sync()

    def _start_shm(self) -> None:
        conn = self._conn
        info = conn.query_extension("MIT-SHM")  # not one of python-xlib's own extensions
        if info is None or not info.present:
            return
        opcode = info.major_opcode
        _ShmQueryVersion(display=conn.display, opcode=opcode)
        server = conn.display.socket.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        _, uid, gid = struct.unpack("3i", server)  # the X server's own user, who must attach it
        width = self.size[0]
        size = min(SHM_BYTES, width * self.size[1] * 4)
        if size < width * 4:
            return  # a screen wider than a segment: not worth it
        try:
            segment = Segment(size, uid, gid)
        except OSError:
            return  # no System V IPC here (a container): GetImage it is
        shmseg = conn.display.allocate_resource_id()
        refused = xerror.CatchError()
        _ShmAttach(display=conn.display, onerror=refused, opcode=opcode, shmseg=shmseg,
                   shmid=segment.id, read_only=False)
        conn.sync()
        if refused.get_error() is not None:
            segment.close()  # e.g. a remote or sandboxed server: GetImage it is
            return
        self._segment, self._shmseg, self._shm_opcode = segment, shmseg, opcode

    # ------------------------------------------------------------ what changed

    def changes(self) -> list[Box] | None:
        """The rectangles damaged since the last call (taking the damage away), merged into
        a few boxes; [] when nothing changed; None when everything must be read again
        (the first look, a resize, or no DAMAGE on this server)."""
        try:
            self._drain()
            if not self._damage or self._resized:
                self._resized = False
                if self._damage:
                    self._conn.damage_subtract(self._damage, X.NONE, X.NONE)
                return None
            conn = self._conn
            conn.damage_subtract(self._damage, X.NONE, self._region)
            reply = _FetchRegion(display=conn.display, opcode=conn.display.get_extension_major("XFIXES"),
                                 region=self._region)
            self.more = False
            rects = [(r.x, r.y, r.x + r.width, r.y + r.height) for r in reply.rectangles]
        except _ERRORS as exc:
            raise CaptureError(f"cannot ask what changed: {exc}") from exc
        width, height = self.size
        boxes = [(max(0, a), max(0, b), min(width, c), min(height, d)) for a, b, c, d in rects]
        return merge_boxes([box for box in boxes if box[0] < box[2] and box[1] < box[3]])

    def settle(self) -> bool:
        """Read what the server sent meanwhile; True if the screen changed again since
        ``changes()``. (An event python-xlib has already read would never wake the loop.)"""
        try:
            self._drain()
        except _ERRORS as exc:
            raise CaptureError(f"the display went away: {exc}") from exc
        return self.more

    def _drain(self) -> None:
        conn = self._conn
        while conn.pending_events():
            event = conn.next_event()
            if event.type == X.ConfigureNotify and event.window == self._root:
                if (event.width, event.height) != self.size:
                    self.size = (event.width, event.height)
                    self._resized = True
                    self.more = True
            elif event.type != X.ConfigureNotify:
                self.more = True  # DamageNotify: the only other event we ask for
        if self._errors:
            errors, self._errors = self._errors, []
            raise CaptureError(f"X error: {errors[0]}")

    # ------------------------------------------------------------ pixels

    def read(self, box: Box | None = None) -> Image.Image:
        """The pixels of ``box`` (default: the whole screen) as an RGB image."""
        left, top, right, bottom = box or (0, 0, *self.size)
        width, height = right - left, bottom - top
        try:
            if self._segment is None:
                return self._get_image(left, top, width, height)
            rows = max(1, self._segment.size // (width * 4))
            if rows >= height:
                return self._shm_read(left, top, width, height)
            image = Image.new("RGB", (width, height))
            for y in range(0, height, rows):
                strip = self._shm_read(left, top + y, width, min(rows, height - y))
                image.paste(strip, (0, y))
            return image
        except _ERRORS as exc:
            raise CaptureError(f"cannot read the screen: {exc}") from exc

    def _shm_read(self, left: int, top: int, width: int, height: int) -> Image.Image:
        assert self._segment is not None
        _ShmGetImage(display=self._conn.display, opcode=self._shm_opcode,
                     drawable=self._root, x=left, y=top, width=width, height=height,
                     plane_mask=0xFFFFFFFF, format=X.ZPixmap, shmseg=self._shmseg, offset=0)
        data = cast(bytes, memoryview(self._segment.buffer)[:width * height * 4])  # no copy
        # Unpacking BGRX into RGB copies: the image no longer refers to the segment.
        return Image.frombuffer("RGB", (width, height), data, "raw", "BGRX", 0, 1)

    def _get_image(self, left: int, top: int, width: int, height: int) -> Image.Image:
        reply = self._root.get_image(left, top, width, height, X.ZPixmap, 0xFFFFFFFF)
        return Image.frombuffer("RGB", (width, height), reply.data, "raw", self._rawmode, 0, 1)

    # ------------------------------------------------------------ ending

    def abort(self) -> None:
        """From any thread: make a call stuck on a server that stopped answering fail now."""
        with contextlib.suppress(OSError):
            self._conn.display.socket.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with contextlib.suppress(*_ERRORS):
            if self._shmseg:
                _ShmDetach(display=self._conn.display, opcode=self._shm_opcode, shmseg=self._shmseg)
            if self._damage:
                self._conn.damage_destroy(self._damage)
            if self._region:
                opcode = self._conn.display.get_extension_major("XFIXES")
                _DestroyRegion(display=self._conn.display, opcode=opcode, region=self._region)
            self._conn.close()
        if self._segment is not None:
            self._segment.close()
            self._segment = None


def _rawmode(conn: Any) -> str:
    """Pillow's name for the screen's pixel layout, or CaptureError."""
    depth = conn.screen().root_depth
    info = conn.display.info
    bpp = next((f.bits_per_pixel for f in info.pixmap_formats if f.depth == depth), None)
    lsb_first = info.image_byte_order == X.LSBFirst
    if bpp == 32 and depth in (24, 32):
        return "BGRX" if lsb_first else "XRGB"
    if bpp == 16 and depth == 16 and lsb_first:
        return "BGR;16"
    raise CaptureError(f"unsupported pixel format: depth {depth}, {bpp} bits per pixel")


# ---------------------------------------------------------------- boxes


def area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


def union(a: Box, b: Box) -> Box:
    return (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3]))


def merge_boxes(boxes: list[Box], limit: int = 6, slack: int = 64 * 64) -> list[Box]:
    """Fewer, larger boxes: join two when their union wastes little, and until at most
    ``limit`` remain (each box read costs a request and a scaling call)."""
    if len(boxes) > 48:  # text drawn glyph by glyph: one box, do not spend time on it
        merged = boxes[0]
        for box in boxes[1:]:
            merged = union(merged, box)
        return [merged]
    boxes = list(boxes)
    while len(boxes) > 1:
        best: tuple[int, int, int] | None = None
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                waste = area(union(boxes[i], boxes[j])) - area(boxes[i]) - area(boxes[j])
                if best is None or waste < best[0]:
                    best = (waste, i, j)
        assert best is not None
        waste, i, j = best
        if waste > slack and len(boxes) <= limit:
            break
        boxes[i] = union(boxes[i], boxes[j])
        del boxes[j]
    return boxes
