"""Thumbnail pixels: scaling a screen, or only the part of it that changed, and JPEG.

A thumbnail is kept per size as a small RGB image (the *base*). When part of the
screen changes, only the base pixels that part reaches are computed again, from
a slightly larger part of the screen (the filter's reach), and pasted in: the
result equals scaling the whole screen again, at a fraction of the cost.

Scaling is Pillow's ``reduce`` (block means: fast, and text stays legible-ish)
then, when the screen is no exact multiple of the thumbnail, a short bilinear
step. JPEG goes through Pillow's libjpeg-turbo.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from dataclasses import dataclass
from typing import cast

from PIL import Image, ImageChops, ImageDraw, ImageFont

from polydesk.system.x11.drawing import wrap
from polydesk.thumbnails.geometry import Box

SIZES: dict[str, int] = {"small": 160, "medium": 320, "large": 480}
# Thumbnails are for telling screens apart, not reading them, and their bytes are most of
# what a Dashboard receives. With optimised Huffman tables, quality 40 looks at 480 px as
# Pillow's default 75 does; at 320 px and below text is not legible at any quality, and
# 25 only adds a little ringing around it: a top in an xterm takes 2.1 KB there instead
# of 2.7 KB at 40 and 4.6 KB at 75 (50 such screens changing every second: 0.9 Mbit/s).
JPEG_QUALITY = 40
JPEG_QUALITY_SMALL = 25  # up to the medium size
PLACEHOLDER_TEXT = "no picture"
_MARGIN = 1  # extra screen pixels around what a thumbnail pixel covers: float rounding


@dataclass(frozen=True)
class Thumbnail:
    jpeg: bytes
    etag: str  # a quoted HTTP entity tag: a hash of the JPEG
    version: int  # 0 for the placeholder; otherwise unique for this daemon's life


def thumb_size(screen: tuple[int, int], width: int) -> tuple[int, int]:
    """The thumbnail of a ``screen``-sized screen at ``width``: same aspect, never enlarged."""
    screen_width, screen_height = screen
    width = min(width, screen_width)
    return width, max(1, round(screen_height * width / screen_width))


@dataclass(frozen=True)
class Scale:
    """Screen pixels to thumbnail pixels, for one screen size and one thumbnail size.

    Two steps, as a whole-screen scaling would do them: ``reduce`` by the largest whole
    factor (each pixel the mean of an f x f block), then, unless that already gives the
    thumbnail's size, a bilinear step of less than 2:1. Both are computed for a part of
    the screen exactly as for the whole: blocks are aligned on the screen's grid, and the
    bilinear weights vary smoothly, so a part's pixels match the whole's within 1.
    """

    screen: tuple[int, int]
    out: tuple[int, int]

    @functools.cached_property
    def factor(self) -> int:
        return max(1, min(self.screen[0] // self.out[0], self.screen[1] // self.out[1]))

    @functools.cached_property
    def reduced(self) -> tuple[int, int]:
        f = self.factor
        return -(-self.screen[0] // f), -(-self.screen[1] // f)

    @functools.cached_property
    def ratio(self) -> tuple[float, float] | None:
        """The bilinear step's reduced pixels per thumbnail pixel; None when there is none."""
        if self.reduced == self.out:
            return None
        return self.reduced[0] / self.out[0], self.reduced[1] / self.out[1]

    def regions(self, box: Box) -> tuple[Box, Box]:
        """For a changed screen ``box``: (the thumbnail box it changes, the screen box needed
        to compute that thumbnail box)."""
        f, ratio = self.factor, self.ratio
        left, top, right, bottom = box
        reduced = (left // f, top // f, -(-right // f), -(-bottom // f))
        if ratio is None:
            dest = reduced
        else:
            w, h = self.out
            rx, ry = ratio
            # A thumbnail pixel x reads reduced pixels within rx of its centre (x + 0.5) * rx.
            dest = (max(0, math.floor(reduced[0] / rx - 1.5) - _MARGIN),
                    max(0, math.floor(reduced[1] / ry - 1.5) - _MARGIN),
                    min(w, math.ceil(reduced[2] / rx + 0.5) + _MARGIN),
                    min(h, math.ceil(reduced[3] / ry + 0.5) + _MARGIN))
        source = self._reduced_source(dest)
        sw, sh = self.screen
        return dest, (source[0] * f, source[1] * f, min(sw, source[2] * f), min(sh, source[3] * f))

    def _reduced_source(self, dest: Box) -> Box:
        """The reduced pixels the thumbnail pixels of ``dest`` read."""
        if self.ratio is None:
            return dest
        (rw, rh), (rx, ry) = self.reduced, self.ratio
        return (max(0, math.floor((dest[0] - 0.5) * rx) - _MARGIN),
                max(0, math.floor((dest[1] - 0.5) * ry) - _MARGIN),
                min(rw, math.ceil((dest[2] + 0.5) * rx) + _MARGIN),
                min(rh, math.ceil((dest[3] + 0.5) * ry) + _MARGIN))

    def tile(self, image: Image.Image, origin: tuple[int, int], dest: Box) -> Image.Image:
        """The thumbnail pixels of ``dest``, from ``image``: screen pixels whose top-left is at
        ``origin`` on the screen, covering at least ``regions()``'s screen box for ``dest``."""
        f = self.factor
        ox, oy = origin
        source = self._reduced_source(dest)
        sw, sh = self.screen
        block = (source[0] * f - ox, source[1] * f - oy,
                 min(sw, source[2] * f) - ox, min(sh, source[3] * f) - oy)
        reduced = image.reduce(f, block) if f > 1 else image.crop(block)
        if self.ratio is None:
            return reduced
        rx, ry = self.ratio
        box = (dest[0] * rx - source[0], dest[1] * ry - source[1],
               dest[2] * rx - source[0], dest[3] * ry - source[1])
        size = (dest[2] - dest[0], dest[3] - dest[1])
        return reduced.resize(size, Image.Resampling.BILINEAR, box=box)

    def whole(self, image: Image.Image) -> Image.Image:
        """The whole screen's thumbnail."""
        return self.tile(image, (0, 0), (0, 0, *self.out))


def same(a: Image.Image, b: Image.Image) -> bool:
    """Equal but for the rounding by which scaling a part can differ from scaling the whole
    (at most 2 levels): a screen redrawn with the same pixels is no new thumbnail."""
    if a.size != b.size:
        return False
    extrema = cast(tuple[tuple[int, int], ...], ImageChops.difference(a, b).getextrema())  # per band
    return max(high for _, high in extrema) <= 2


def encode(base: Image.Image, version: int) -> Thumbnail:
    jpeg = jpeg_of(base, base.width)
    return Thumbnail(jpeg, f'"{hashlib.blake2b(jpeg, digest_size=12).hexdigest()}"', version)


def jpeg_of(image: Image.Image, thumb_width: int) -> bytes:
    """``image`` (a thumbnail, or part of one ``thumb_width`` wide) as JPEG."""
    buffer = io.BytesIO()
    quality = JPEG_QUALITY_SMALL if thumb_width <= SIZES["medium"] else JPEG_QUALITY
    image.save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


def placeholder_size(size: str) -> tuple[int, int]:
    """The "no picture" card's size: 16:10, as most screens."""
    return SIZES[size], SIZES[size] * 10 // 16


@functools.lru_cache(maxsize=64)
def placeholder(size: str, text: str = PLACEHOLDER_TEXT) -> Thumbnail:
    """A grey 16:10 card saying there is no picture, or why (a backend's reason: a Wayland session)."""
    width, height = placeholder_size(size)
    image = Image.new("RGB", (width, height), (60, 64, 72))
    draw = ImageDraw.Draw(image)
    short = text == PLACEHOLDER_TEXT
    font = ImageFont.load_default(size=max(10, width // (12 if short else 18)))
    lines = wrap(text, font, width - 16)
    step = font.size * 1.25 if isinstance(font, ImageFont.FreeTypeFont) else 12
    top = width * 5 / 16 - step * (len(lines) - 1) / 2
    for number, line in enumerate(lines):
        draw.text((width / 2, top + number * step), line, fill=(200, 204, 212), font=font, anchor="mm")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    jpeg = buffer.getvalue()
    return Thumbnail(jpeg, f'"p-{hashlib.blake2b(jpeg, digest_size=12).hexdigest()}"', 0)
