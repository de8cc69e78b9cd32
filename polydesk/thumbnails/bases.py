"""A session's thumbnails, one per size (the *bases*), brought up to date from its screen.

Runs in the thumbnailer's pool thread: asks the reader what changed, reads only that, scales
it into every size in use and pastes it in. Published bases are never changed (the loop's
thread may be encoding one): a base that changes is copied first.
"""

from __future__ import annotations

from typing import NamedTuple

from PIL import Image

from polydesk.thumbnails.capture import Reader
from polydesk.thumbnails.geometry import Box, bounding, union
from polydesk.thumbnails.picture import SIZES, Scale, same, thumb_size


class Look(NamedTuple):
    """What one look at a screen found."""

    bases: dict[str, Image.Image]  # the new bases, one per size in use
    parts: dict[str, Box | None]  # the part of each that changed (None or missing: nothing)
    more: bool  # the screen changed again meanwhile
    read: float  # the share of the screen read (0 to 1): what the look cost (``pacing``)


def update(reader: Reader, bases: dict[str, Image.Image], sizes: set[str]) -> Look:
    """Look at the screen once: the bases brought up to date. ``bases`` is left as it is."""
    screen = reader.size
    scales = {size: Scale(screen, thumb_size(screen, SIZES[size])) for size in sizes}
    boxes = reader.changes()
    screen = reader.size  # changes() notices a resize
    if boxes is None or any(bases.get(s) is None or bases[s].size != scales[s].out for s in sizes):
        scales = {size: Scale(screen, thumb_size(screen, SIZES[size])) for size in sizes}
        image = reader.read()
        new = {size: scale.whole(image) for size, scale in scales.items()}
        # A size added to a picture already made is no change: the version names the screen.
        whole: dict[str, Box | None] = {size: (0, 0, *new[size].size) for size in sizes}
        if bases and not any(size in bases and not same(bases[size], new[size]) for size in sizes):
            return Look({size: bases.get(size, new[size]) for size in sizes}, {}, reader.settle(), 1.0)
        return Look(new, whole, reader.settle(), 1.0)
    new = {size: bases[size] for size in sizes}
    parts: dict[str, Box | None] = {}
    pixels = 0
    for box in boxes:
        plans = {size: scale.regions(box) for size, scale in scales.items()}
        area = bounding(source for _, source in plans.values())
        assert area is not None  # one plan per size, and there is a size
        image = reader.read(area)
        pixels += image.width * image.height
        for size, (dest, _) in plans.items():
            tile = scales[size].tile(image, area[:2], dest)
            if same(tile, new[size].crop(dest)):
                continue
            if new[size] is bases[size]:
                new[size] = new[size].copy()  # copy on write: published bases never change
            new[size].paste(tile, dest[:2])
            parts[size] = union(parts.get(size), dest)
    return Look(new, parts, reader.settle(), min(1.0, pixels / max(1, screen[0] * screen[1])))

