"""Resizing a session's Xvnc screen through RandR, as an X client (what ``xrandr`` does).

Why not the RFB SetDesktopSize a station sends: TigerVNC 1.12 can misread one whose
body arrives late (rfbfilter.py), so the station bridge never forwards it. The daemon
asks the session's own X server instead, over the same checked ``Wire`` as the VNC
settings (xserver.py): Xvnc then tells every viewer the new size with the
ExtendedDesktopSize / DesktopSize pseudo-encodings, as for any RandR change.

Xvnc 1.12 (unix/xserver/hw/vnc/xvnc.c) resizes its framebuffer on RRSetScreenSize, but
refuses a screen smaller than what its CRTC shows, and offers a fixed list of modes. So,
as ``xrandr --fb WxH --output VNC-0 --mode WxH`` does: turn the CRTC off if it no longer
fits, set the screen size, make a mode of exactly that size if there is none, and show it
on the output. Modes the daemon made and no longer shows are removed, so a window dragged
through a hundred sizes leaves none behind.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from polydesk.core.screen import Screen
from polydesk.system.x11.xauth import X11Error
from polydesk.system.x11.xserver import wire
from polydesk.system.x11.xwire import Wire, pad

# The daemon reads a whole screen in one GetImage reply, capped for 4096 x 4096 (xwire.MAX_REPLY).
HARD_MAX = 4096
HARD_MIN = 64
MODE_PREFIX = "polydesk-"  # the modes the daemon made, and so may remove
DPI = 96  # the physical size a screen claims; Xvnc has no monitor to ask

_QUERY_VERSION, _SET_SCREEN_SIZE, _GET_RESOURCES = 0, 7, 8
_CREATE_MODE, _DESTROY_MODE, _ADD_OUTPUT_MODE, _DELETE_OUTPUT_MODE = 16, 17, 18, 19
_GET_CRTC_INFO, _SET_CRTC_CONFIG = 20, 21
_ROTATE_0 = 1


@dataclass(frozen=True)
class Mode:
    id: int
    width: int
    height: int
    name: str


@dataclass(frozen=True)
class Resources:
    config_time: int
    crtcs: tuple[int, ...]
    outputs: tuple[int, ...]
    modes: tuple[Mode, ...]


def size(screen: Screen, timeout: float = 5.0) -> tuple[int, int]:
    """The screen's size now (the root window's, as a new client is told it)."""
    with wire(screen, timeout) as conn:
        return conn.setup.width, conn.setup.height


def set_size(screen: Screen, width: int, height: int, timeout: float = 5.0) -> tuple[int, int]:
    """Make the screen exactly ``width`` x ``height``; its size afterwards. X11Error if the
    server has no RandR 1.2 or refuses (then the screen keeps a size it had)."""
    if not (HARD_MIN <= width <= HARD_MAX and HARD_MIN <= height <= HARD_MAX):
        raise X11Error(f"screen size {width}x{height} is outside {HARD_MIN}..{HARD_MAX}")
    with wire(screen, timeout) as conn:
        opcode = _randr(conn, screen.display)
        root = conn.setup.root
        found = _resources(conn, opcode, root)
        if not found.crtcs or not found.outputs:
            raise X11Error(f"display {screen.display} has no CRTC or output to resize")
        crtc, output = found.crtcs[0], found.outputs[0]
        shown = _crtc_size(conn, opcode, crtc, found.config_time)
        if shown == (width, height) and (conn.setup.width, conn.setup.height) == shown:
            return shown  # already so: a reload or a resume asks again
        if shown is not None and (shown[0] > width or shown[1] > height):
            _set_crtc(conn, opcode, crtc, found.config_time, 0, ())  # off: it would not fit
        mm = (round(width * 25.4 / DPI), round(height * 25.4 / DPI))
        conn.send(struct.pack("<BBHIHHII", opcode, _SET_SCREEN_SIZE, 5, root, width, height, *mm))
        conn.sync()  # an X error (a size Xvnc refuses) raises here
        mode = next((m for m in found.modes if (m.width, m.height) == (width, height)), None)
        if mode is None:
            mode = _create_mode(conn, opcode, root, output, width, height)
        found = _resources(conn, opcode, root)  # the screen size change moved the config time
        _set_crtc(conn, opcode, crtc, found.config_time, mode.id, (output,))
        for old in found.modes:
            if old.name.startswith(MODE_PREFIX) and old.id != mode.id:
                conn.send(struct.pack("<BBHII", opcode, _DELETE_OUTPUT_MODE, 3, output, old.id),
                          struct.pack("<BBHI", opcode, _DESTROY_MODE, 2, old.id))
        conn.sync()
    return size(screen, timeout)


def _randr(conn: Wire, display: str) -> int:
    extension = conn.query_extension("RANDR")
    if extension is None:
        raise X11Error(f"display {display} has no RandR extension")
    reply = conn.call(struct.pack("<BBHII", extension.opcode, _QUERY_VERSION, 3, 1, 5))
    major, minor = struct.unpack_from("<II", reply, 8)
    if (major, minor) < (1, 2):
        raise X11Error(f"display {display} has RandR {major}.{minor}; 1.2 is needed to resize it")
    return extension.opcode


def _resources(conn: Wire, opcode: int, root: int) -> Resources:
    reply = conn.call(struct.pack("<BBHI", opcode, _GET_RESOURCES, 2, root))
    config_time, = struct.unpack_from("<I", reply, 12)
    ncrtcs, noutputs, nmodes, _ = struct.unpack_from("<HHHH", reply, 16)
    offset = 32
    crtcs = struct.unpack_from(f"<{ncrtcs}I", reply, offset)
    offset += 4 * ncrtcs
    outputs = struct.unpack_from(f"<{noutputs}I", reply, offset)
    offset += 4 * noutputs
    names = offset + 32 * nmodes
    modes = []
    for index in range(nmodes):
        mode_id, width, height = struct.unpack_from("<IHH", reply, offset + 32 * index)
        name_length, = struct.unpack_from("<H", reply, offset + 32 * index + 26)
        modes.append(Mode(mode_id, width, height, reply[names:names + name_length].decode(errors="replace")))
        names += name_length
    return Resources(config_time, tuple(crtcs), tuple(outputs), tuple(modes))


def _crtc_size(conn: Wire, opcode: int, crtc: int, config_time: int) -> tuple[int, int] | None:
    """What the CRTC shows (None when it is off)."""
    reply = conn.call(struct.pack("<BBHII", opcode, _GET_CRTC_INFO, 3, crtc, config_time))
    width, height, mode = struct.unpack_from("<HHI", reply, 16)
    return (width, height) if mode else None


def _set_crtc(conn: Wire, opcode: int, crtc: int, config_time: int, mode: int,
              outputs: tuple[int, ...]) -> None:
    request = struct.pack(f"<BBHIIIhhIHxx{len(outputs)}I", opcode, _SET_CRTC_CONFIG, 7 + len(outputs),
                          crtc, 0, config_time, 0, 0, mode, _ROTATE_0, *outputs)
    status = conn.call(request)[1]
    if status != 0:  # 1, 2: the configuration changed under us; 3: refused
        raise X11Error(f"the X server refused to show mode {mode} on CRTC {crtc} (status {status})")


def _create_mode(conn: Wire, opcode: int, root: int, output: int, width: int, height: int) -> Mode:
    name = f"{MODE_PREFIX}{width}x{height}"
    raw = name.encode()
    refresh = 60
    # A mode with no blanking: Xvnc has no monitor to drive, only the size and clock count.
    clock = width * height * refresh
    info = struct.pack("<IHHIHHHHHHHHI", 0, width, height, clock, width, width, width, 0,
                       height, height, height, len(raw), 0)
    reply = conn.call(struct.pack("<BBHI", opcode, _CREATE_MODE, 2 + (len(info) + len(pad(raw))) // 4, root)
                      + info + pad(raw))
    mode_id, = struct.unpack_from("<I", reply, 8)
    conn.send(struct.pack("<BBHII", opcode, _ADD_OUTPUT_MODE, 3, output, mode_id))
    return Mode(mode_id, width, height, name)
