"""Boxes: parts of a screen or of a thumbnail, the one implementation every thumbnail module uses.

A box is (left, top, right, bottom) in pixels, right and bottom excluded; None stands for
"nothing" where a part may be empty (what a version changed, the union of no boxes).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import overload

Box = tuple[int, int, int, int]  # left, top, right, bottom (right and bottom excluded)


def area(box: Box) -> int:
    return (box[2] - box[0]) * (box[3] - box[1])


@overload
def union(a: Box, b: Box | None) -> Box: ...
@overload
def union(a: Box | None, b: Box) -> Box: ...
@overload
def union(a: Box | None, b: Box | None) -> Box | None: ...
def union(a: Box | None, b: Box | None) -> Box | None:
    """The smallest box holding both; None stands for nothing."""
    if a is None:
        return b
    if b is None:
        return a
    return min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])


def bounding(boxes: Iterable[Box | None]) -> Box | None:
    """The smallest box holding all of ``boxes``; None when there is none."""
    around: Box | None = None
    for box in boxes:
        around = union(around, box)
    return around


def merge_boxes(boxes: list[Box], limit: int = 4, slack: int = 128 * 1024) -> list[Box]:
    """Fewer, larger boxes: join two when their union wastes little, and until at most
    ``limit`` remain (each box read costs a request and a scaling call)."""
    if len(boxes) > 48:  # text drawn glyph by glyph: one box, do not spend time on it
        merged = bounding(boxes)
        assert merged is not None
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
