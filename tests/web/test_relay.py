"""The projection relay's pure parts: Tight's compact length, Raw layouts, and updates that a
station can decode on its own (every JPEG stands alone)."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import Image

from polydesk.web.relay import BAND, PIXEL_FORMAT, RAW, TIGHT, encode_update, raw_layout, tight_length


def read_length(data: bytes) -> tuple[int, int]:
    """TigerVNC's reader of the compact length: (value, bytes it took)."""
    value, shift, used = 0, 0, 0
    for byte in data[:3]:
        used += 1
        value |= (byte & 0x7F if used < 3 else byte) << shift
        shift += 7
        if not byte & 0x80 or used == 3:
            break
    return value, used


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16383, 16384, (1 << 22) - 1])
def test_the_compact_length_reads_back(size: int) -> None:
    encoded = tight_length(size)
    assert read_length(encoded + b"\xff\xff") == (size, len(encoded))


def test_a_length_tight_cannot_say_is_refused() -> None:
    with pytest.raises(ValueError):
        tight_length(1 << 22)


def pixel_format(bpp: int, big: int, true: int, shifts: tuple[int, int, int], top: int = 255) -> bytes:
    return struct.pack(">BBBBHHHBBBxxx", bpp, 24, big, true, top, top, top, *shifts)


def test_raw_layouts() -> None:
    assert raw_layout(PIXEL_FORMAT) == "RGBX"  # noVNC's own, and the relay's
    assert raw_layout(pixel_format(32, 0, 1, (16, 8, 0))) == "BGRX"  # TigerVNC's and Xvnc's default
    assert raw_layout(pixel_format(32, 1, 1, (16, 8, 0))) == "XRGB"
    assert raw_layout(pixel_format(16, 0, 1, (11, 5, 0), top=31)) is None  # 16 bits: Tight only
    assert raw_layout(pixel_format(32, 0, 0, (0, 8, 16))) is None  # a colour map


def rectangles(message: bytes) -> list[tuple[tuple[int, int, int, int], int, bytes]]:
    """The rectangles of a FramebufferUpdate: box, encoding, payload."""
    kind, count = struct.unpack_from(">BxH", message)
    assert kind == 0
    at, found = 4, []
    for _ in range(count):
        x, y, w, h, encoding = struct.unpack_from(">HHHHi", message, at)
        at += 12
        if encoding == RAW:
            payload, at = message[at:at + w * h * 4], at + w * h * 4
        else:
            assert encoding == TIGHT and message[at] == 0x90  # JPEG, no zlib stream at all
            length, used = read_length(message[at + 1:at + 4])
            payload, at = message[at + 1 + used:at + 1 + used + length], at + 1 + used + length
        found.append(((x, y, x + w, y + h), encoding, payload))
    assert at == len(message)
    return found


def test_updates_are_bands_of_standalone_jpegs_or_raw_in_the_asked_layout() -> None:
    width, height = 640, 600
    picture = Image.new("RGB", (width, height), (0x20, 0x40, 0x80))
    picture.paste((0xFF, 0x80, 0x00), (100, 100, 300, 200))
    pixels = picture.tobytes("raw", "RGBX")

    whole = rectangles(encode_update(pixels, width, [(0, 0, width, height)], "tight"))
    bands = [(0, y, width, min(y + BAND, height)) for y in range(0, height, BAND)]
    assert [box for box, _, _ in whole] == bands
    first = Image.open(io.BytesIO(whole[0][2]))
    assert first.size == (width, BAND)
    r, g, b = first.convert("RGB").getpixel((150, 150))  # type: ignore[misc]
    assert abs(r - 0xFF) < 16 and abs(g - 0x80) < 16 and b < 24

    [(box, encoding, payload)] = rectangles(encode_update(pixels, width, [(96, 96, 160, 128)], "BGRX"))
    assert (box, encoding, len(payload)) == ((96, 96, 160, 128), RAW, 64 * 32 * 4)
    assert payload[(10 * 64 + 10) * 4:][:3] == bytes([0x00, 0x80, 0xFF])  # blue, green, red
