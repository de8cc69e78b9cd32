"""Client streams for fuzzing the bridge's RFB reader: mostly well-formed RFB 3.8 from a
station, with every message type Xvnc reads (and some it does not), the tricks that make two
readers disagree (versions sscanf reads loosely, keys hidden in encodings, clipboard messages
longer than Xvnc reads them, SetDesktopSize), a few mutated bytes, and cut into pieces at
random places. Seeded: the same ``random.Random`` gives the same stream."""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable

from tests.rfb import hidden_one_byte_ahead, key_events

VERSION = b"RFB 003.008\n"
LOOSE_VERSIONS = (b"RFB 003.+08\n", b"RFB 003.8\n  ", b"RFB003.008\n ", b"RFB 003.\n08\n",
                  b"RFB 003.007\n", b"RFB 003.003\n", b"RFB 003.009\n", b"RFB 004.000\n")
ENCODINGS = (0, 1, 2, 5, 6, 7, 16, 21, -223, -224, -239, -258, -261, -305, -307, -308, -309,
             -312, -313, -314, -316, -1063131698)
CAPS, REQUEST, PEEK, NOTIFY, PROVIDE = (1 << n for n in range(24, 29))


def client_stream(rng: random.Random, messages: int = 12) -> bytes:
    """A handshake and up to ``messages`` client messages."""
    if rng.random() < 0.1:  # the attack that worked once, and variations on it
        head = rng.choice(LOOSE_VERSIONS) + b"\x01"
        body = hidden_one_byte_ahead(key_events("qx\n") + _pointer(rng))
    else:
        if rng.random() < 0.85:
            head = VERSION
        elif rng.random() < 0.7:
            head = rng.choice(LOOSE_VERSIONS)
        else:
            head = _mutated(rng, VERSION)
        head += b"\x01" if rng.random() < 0.95 else bytes([rng.randrange(256)])
        body = bytes([rng.randrange(256)])  # ClientInit
    for _ in range(rng.randint(0, messages)):
        body += rng.choices(_BUILDERS, _WEIGHTS)[0](rng)
    if rng.random() < 0.15:
        body = _mutated(rng, body)
    return head + body


def pieces(rng: random.Random, data: bytes) -> list[bytes]:
    """``data`` cut at random places (sometimes not at all, sometimes byte by byte)."""
    roll = rng.random()
    if roll < 0.25 or not data:
        return [data]
    if roll < 0.35:
        return [data[i:i + 1] for i in range(len(data))]
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, 8)))) \
        if len(data) > 1 else []
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def _mutated(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        if not out:
            break
        where = rng.randrange(len(out))
        action = rng.random()
        if action < 0.6:
            out[where] = rng.randrange(256)
        elif action < 0.8:
            out.insert(where, rng.randrange(256))
        else:
            del out[where]
    return bytes(out)


def _u16(rng: random.Random) -> int:
    return rng.choice((0, 1, 10, 640, 1279, 1280, 65535, rng.randrange(65536)))


def _pixel_format(rng: random.Random) -> bytes:
    return b"\0" + bytes(rng.randrange(256) for _ in range(19))


def _encodings(rng: random.Random) -> bytes:
    if rng.random() < 0.3:  # keys (and a click) Xvnc reads where a reader one byte ahead sees encodings
        return hidden_one_byte_ahead(key_events("xq\n") + struct.pack(">BBHH", 5, 1, 640, 400))
    chosen = [rng.choice(ENCODINGS) if rng.random() < 0.8 else rng.randrange(-2**31, 2**31)
              for _ in range(rng.randint(0, 12))]
    return struct.pack(f">BxH{len(chosen)}i", 2, len(chosen), *chosen)


def _rectangle(kind: int) -> Callable[[random.Random], bytes]:
    def build(rng: random.Random) -> bytes:
        flag = rng.choice((0, 1, 255))
        return struct.pack(">BBHHHH", kind, flag, _u16(rng), _u16(rng), _u16(rng), _u16(rng))
    return build


def _key(rng: random.Random) -> bytes:
    keysym = rng.choice((0x61, 0x20, 0xFF0D, 0xFFE9, 0xFFC1, 0x1000041, rng.randrange(2**32)))
    return struct.pack(">BBHI", 4, rng.choice((0, 1, 7)), rng.choice((0, 0x0405)), keysym)


def _pointer(rng: random.Random) -> bytes:
    return struct.pack(">BBHH", 5, rng.choice((0, 1, 4, 0x80, 0xFF)), _u16(rng), _u16(rng))


def _cut_text(rng: random.Random) -> bytes:
    text = bytes(rng.randrange(32, 127) for _ in range(rng.randint(0, 40)))
    if rng.random() < 0.4:
        return struct.pack(">BxxxI", 6, len(text)) + text
    if rng.random() < 0.1:  # impossible lengths: INT_MIN, or shorter than the flags
        return struct.pack(">BxxxI", 6, rng.choice((0x80000000, 0xFFFFFFFF, 0xFFFFFFFD))) + b"\0" * 4
    surplus = key_events("zq") if rng.random() < 0.5 else b""  # what Xvnc reads as new messages
    action = rng.choice((CAPS, REQUEST, PEEK, NOTIFY, PROVIDE, CAPS | PROVIDE, 1 << 29, 0))
    formats = rng.choice((0, 1, 3, 0x8001))
    if action == PROVIDE:
        plain = b"".join(struct.pack(">I", len(text)) + text for bit in range(16) if formats & (1 << bit))
        compressor = zlib.compressobj()
        finish = rng.choice((zlib.Z_SYNC_FLUSH, zlib.Z_FINISH))
        payload = compressor.compress(plain) + compressor.flush(finish)
        if rng.random() < 0.2:
            payload = _mutated(rng, payload)
        payload += surplus if finish == zlib.Z_FINISH else b""
    else:
        payload = b"".join(struct.pack(">I", rng.choice((0, 1024))) for bit in range(16)
                           if formats & (1 << bit)) + surplus
    data = struct.pack(">I", action | formats) + payload
    return struct.pack(">Bxxxi", 6, -len(data)) + data


def _fence(rng: random.Random) -> bytes:
    data = bytes(rng.randrange(256) for _ in range(rng.choice((0, 4, 64, 65, rng.randint(0, 255)))))
    return struct.pack(">BxxxIB", 248, rng.choice((0, 1, 3, 0x80000000, 0x80000007)), len(data)) + data


def _desktop_size(rng: random.Random) -> bytes:
    screens = rng.randint(0, 2)
    body = b"".join(struct.pack(">IHHHHI", i, 0, 0, _u16(rng), _u16(rng), 0) for i in range(screens))
    # Xvnc 1.12 takes these 7 bytes for new messages when they arrive late: keys, here
    return struct.pack(">BBHHBB", 251, 4, 1, 0x0000, 0, 0) + body


def _qemu(rng: random.Random) -> bytes:
    subtype = 0 if rng.random() < 0.9 else rng.randrange(256)  # Xvnc knows only 0
    return struct.pack(">BBHII", 255, subtype, rng.choice((0, 1)), 0x61,
                       rng.choice((0, 30, rng.randrange(2**32))))


def _unknown(rng: random.Random) -> bytes:
    kind = rng.choice((1, 7, 8, 127, 150, 249, 250, 252, 253, 254, rng.randrange(256)))
    return bytes([kind]) + bytes(rng.randrange(256) for _ in range(rng.randint(0, 12)))


_BUILDERS: tuple[Callable[[random.Random], bytes], ...] = (
    _pixel_format, _encodings, _rectangle(3), _rectangle(150), _key, _pointer, _cut_text, _fence,
    _desktop_size, _qemu, _unknown)
_WEIGHTS = (2, 6, 6, 2, 6, 6, 6, 3, 2, 2, 1)
