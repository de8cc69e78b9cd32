"""How TigerVNC 1.12's Xvnc reads what an RFB client sends, for tests of the bridge's reader.

A line-by-line model of common/rfb/SConnection.cxx (processVersionMsg's sscanf, the security
type, ClientInit) and common/rfb/SMsgReader.cxx (every client message, the extended clipboard
and the bugs that matter: a SetDesktopSize whose body has not arrived is taken for a one-byte
message; caps, request, peek and notify consume fewer bytes than they declare). Fed chunk by
chunk, as Xvnc's socket would be, it lists what Xvnc would act on. The tests hold it against
the real Xvnc too (tests/web/test_station_desync.py).
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass, field

MAX_CUT_TEXT = 256 * 1024  # Xvnc's MaxCutText default
INPUT_EVENTS = frozenset({"key", "pointer", "cut", "clipboard", "desktop-size", "qemu-key"})
_CAPS, _REQUEST, _PEEK, _NOTIFY, _PROVIDE = (1 << n for n in range(24, 29))


class Closed(Exception):
    """Xvnc would throw and hang up."""


def scan_version(text: bytes) -> tuple[int, int] | None:
    """sscanf(text, "RFB %03d.%03d\\n", &major, &minor) == 2, as glibc reads it."""
    # "RFB" literally; a blank in the format skips any white space (none too); %03d skips white
    # space, then takes at most 3 characters: an optional sign and digits.
    number = rb"[ \t\n\v\f\r]*([+-]\d{1,2}|\d{1,3})"
    match = re.match(rb"RFB[ \t\n\v\f\r]*" + number + rb"\." + number, text)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass
class XvncReader:
    state: str = "version"
    events: list[tuple[str, object]] = field(default_factory=list)
    buffer: bytearray = field(default_factory=bytearray)
    version: tuple[int, int] | None = None

    def receive(self, data: bytes) -> list[tuple[str, object]]:
        """Take one read's worth of bytes; the events it caused. Raises Closed."""
        self.buffer += data
        before = len(self.events)
        while self.buffer and self._step():
            pass
        return self.events[before:]

    @property
    def idle(self) -> bool:
        """Nothing half-read: the next byte would start a new message."""
        return not self.buffer

    def _step(self) -> bool:
        if self.state == "version":
            if len(self.buffer) < 12:
                return False
            version = scan_version(bytes(self.buffer[:12]))
            del self.buffer[:12]
            if version is None or version[0] != 3:
                raise Closed(f"version {version}")
            minor = version[1] if version[1] in (3, 7, 8) else (8 if version[1] >= 8 else 3)
            self.version = (3, minor)
            self.state = "init" if minor == 3 else "security"  # 3.3: Xvnc picks None itself
            return True
        if self.state == "security":
            choice = self.buffer.pop(0)
            if choice != 1:
                raise Closed(f"security type {choice}")
            self.state = "init"
            return True
        if self.state == "init":
            self.events.append(("client-init", self.buffer.pop(0)))
            self.state = "normal"
            return True
        read = _message(self.buffer)
        if read is None:
            return False
        size, event = read
        del self.buffer[:size]
        if event is not None:
            self.events.append(event)
        return True


Read = tuple[int, tuple[str, object] | None]


def _message(b: bytearray) -> Read | None:
    kind, have = b[0], len(b)
    fixed = {0: 20, 3: 10, 4: 8, 5: 6, 150: 10}
    if kind in fixed:
        if have < fixed[kind]:
            return None
        m = bytes(b[:fixed[kind]])
        if kind == 4:
            down, key = struct.unpack_from(">BxxI", m, 1)
            return 8, ("key", (key, bool(down)))
        if kind == 5:
            return 6, ("pointer", struct.unpack_from(">BHH", m, 1))
        name = {0: "pixel-format", 3: "update-request", 150: "continuous-updates"}[kind]
        return fixed[kind], (name, m[1:])
    if kind == 2:
        if have < 4:
            return None
        size = 4 + 4 * struct.unpack_from(">H", b, 2)[0]
        return None if have < size else (size, ("encodings", bytes(b[4:size])))
    if kind == 251:
        if have < 8:
            return 1, None  # the 1.12 bug: "return true" with only the type byte read
        size = 8 + 16 * b[6]
        return None if have < size else (size, ("desktop-size", bytes(b[1:size])))
    if kind == 248:
        if have < 9:
            return None
        size = 9 + b[8]
        if have < size:
            return None
        return size, (("fence", bytes(b[4:size])) if b[8] <= 64 else None)
    if kind == 6:
        return _cut_text(b)
    if kind == 255:
        if have < 2:
            return None
        if b[1] != 0:
            raise Closed(f"QEMU submessage {b[1]}")
        if have < 12:
            return None
        down, keysym, keycode = struct.unpack_from(">HII", b, 2)
        return 12, (("qemu-key", (keysym, keycode, bool(down))) if keycode else None)
    raise Closed(f"unknown message type {kind}")


def _cut_text(b: bytearray) -> Read | None:
    if len(b) < 8:
        return None
    (length,) = struct.unpack_from(">I", b, 4)
    if not length & 0x80000000:
        if len(b) < 8 + length:
            return None
        return 8 + length, (("cut", bytes(b[8:8 + length])) if length <= MAX_CUT_TEXT else None)
    slen = struct.unpack(">i", struct.pack(">I", (-length) & 0xFFFFFFFF))[0]
    if slen < 0:  # -INT_MIN: hasData() of an enormous size_t, beyond the 32 MiB buffer
        raise Closed("extended clipboard length")
    if len(b) < 8 + slen:
        return None
    if slen < 4:
        raise Closed("extended clipboard shorter than its flags")
    if slen > MAX_CUT_TEXT:
        return 8 + slen, None
    (flags,) = struct.unpack_from(">I", b, 8)
    action, formats = flags & 0xFF000000, [i for i in range(16) if flags & (1 << i)]
    if action & _CAPS:
        if slen < 4 + 4 * len(formats):
            raise Closed("caps too short")
        return 12 + 4 * len(formats), ("clipboard-caps", flags)
    if action == _PROVIDE:
        return 8 + slen, ("clipboard", _provided(bytes(b[12:8 + slen]), formats))
    if action in (_REQUEST, _PEEK, _NOTIFY):
        return 12, ("clipboard-" + {_REQUEST: "request", _PEEK: "peek", _NOTIFY: "notify"}[action], flags)
    raise Closed("extended clipboard action")


def _provided(compressed: bytes, formats: list[int]) -> list[bytes]:
    if not formats:
        return []
    try:
        data = zlib.decompressobj().decompress(compressed)
    except zlib.error as exc:
        raise Closed(f"inflate: {exc}") from exc
    texts, offset = [], 0
    for _ in formats:
        if offset + 4 > len(data):
            raise Closed("clipboard decode")
        (length,) = struct.unpack_from(">I", data, offset)
        if offset + 4 + length > len(data):
            raise Closed("clipboard decode")
        texts.append(data[offset + 4:offset + 4 + length])
        offset += 4 + length
    return texts
