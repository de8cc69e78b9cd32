"""What goes to a Dashboard: a thumbnail whole, or only the part that changed since the
version the Dashboard holds (a *patch*), and the per-size record of what each version changed
that tells which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from PIL import Image

from polydesk.thumbnails.geometry import Box, bounding

_MCU = 16  # JPEG's block, 4:2:0


@dataclass(frozen=True)
class Patch:
    """What a watcher needs to bring its copy of a thumbnail up to date: a JPEG to draw at
    ``box``'s top-left corner of a ``size`` picture (the whole picture when ``box`` is it)."""

    version: int  # 0 for the placeholder
    box: tuple[int, int, int, int]
    size: tuple[int, int]
    jpeg: bytes

    @property
    def whole(self) -> bool:
        return self.box == (0, 0, *self.size)


@dataclass
class History:
    """Which part of one size's thumbnail each of the last versions changed, so a watcher
    that has version *v* can be sent only the part that differs from the newest.

    ``since`` is the oldest version the record starts from; a watcher with an older one (or
    none) needs the whole picture. Bounded: a watcher that far behind gets the whole too.
    """

    since: int
    steps: list[tuple[int, Box | None]] = field(default_factory=list)  # (version, changed part)
    LIMIT: ClassVar[int] = 16

    def add(self, version: int, changed: Box | None) -> None:
        self.steps.append((version, changed))
        if len(self.steps) > self.LIMIT:
            self.since = self.steps.pop(0)[0]

    def changed_since(self, version: int) -> tuple[bool, Box | None]:
        """(whether ``version`` is on record, the part changed since it: None for nothing)."""
        if version != self.since and all(v != version for v, _ in self.steps):
            return False, None
        return True, bounding(box for v, box in self.steps if v > version)


def histories(before: dict[str, Image.Image], records: dict[str, History], version: int,
              bases: dict[str, Image.Image], parts: dict[str, Box | None], changed: bool
              ) -> dict[str, History]:
    """The records that go with new ``bases`` (replacing ``before``), ``version`` being the
    newest: a size whose picture is new starts afresh, watchers of older ones get it whole."""
    history: dict[str, History] = {}
    for size, base in bases.items():
        old, record = before.get(size), records.get(size)
        if old is None or old.size != base.size or record is None:
            record = History(since=version)
        elif changed:
            record.add(version, parts.get(size))
        history[size] = record
    return history


def to_send(history: History | None, since: int | None, size: tuple[int, int]) -> Box | None:
    """The part of a ``size`` thumbnail a watcher holding version ``since`` (None: nothing)
    needs: the whole when its version is not on record, None when it is up to date."""
    known, part = history.changed_since(since) if history and since else (False, None)
    if known and part is None:
        return None
    return mcu_aligned(part, size) if known and part else (0, 0, *size)


def mcu_aligned(box: Box, size: tuple[int, int]) -> Box:
    """``box`` grown to JPEG's 16-pixel blocks (4:2:0), within ``size``. A part of a thumbnail
    cut there encodes to the very blocks the whole picture has, so a patch leaves no seam."""
    left, top, right, bottom = box
    return (left - left % _MCU, top - top % _MCU,
            min(size[0], -(-right // _MCU) * _MCU), min(size[1], -(-bottom // _MCU) * _MCU))
