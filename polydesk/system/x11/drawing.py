"""Text drawn with Pillow: fonts, wrapping to a width, centred blocks of text.

The helper windows (``windows``) draw their panels with it, and the thumbnailer its
"no picture" card with ``wrap``. Pillow + DejaVu so any UTF-8 text ("Estação bloqueada") shows.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image, ImageFont

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


@dataclass(frozen=True)
class Colours:
    background: tuple[int, int, int]
    foreground: tuple[int, int, int]
    accent: tuple[int, int, int]


def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans (bold) at ``size`` pixels, else Pillow's own font."""
    from PIL import ImageFont

    for name in FONT_BOLD_FILES if bold else FONT_FILES:
        with contextlib.suppress(OSError):
            return ImageFont.truetype(name, size)
    return ImageFont.load_default(size)


def wrap(text: str, face: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` pixels in ``face`` (keeping its own
    line breaks); a word wider than that has a line of its own."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and face.getlength(candidate) > width:
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
        face = font(block.size, block.bold)
        lines = wrap(block.text, face, width - 2 * padding)
        line_height = int(block.size * 1.3)
        laid_out.append((block, face, lines, line_height))
        total += line_height * len(lines)
    total += gap * max(0, len(blocks) - 1)
    height = height or total + 2 * padding
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    y = (height - total) // 2
    for block, face, lines, line_height in laid_out:
        for line in lines:
            x = (width - face.getlength(line)) / 2
            draw.text((x, y), line, font=face, fill=block.colour)
            y += line_height
        y += gap
    return image
