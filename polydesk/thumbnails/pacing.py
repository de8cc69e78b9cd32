"""How soon a session's screen is looked at again: a budget per feed, counted in screens.

A look costs a fixed part (round trips to the X server, a message to every watcher) plus
what changed: reading, scaling, encoding and sending all grow with the changed area. So each
feed holds a bucket of ``burst`` screens, refilled at ``rate`` screens a second; a look is
made as soon as the bucket is not in debt, and its cost is taken out afterwards (what changed
is known only then). This gives, with the default one screen a second:

- the first change after a quiet spell is looked at at once (the leading edge), not at the
  next tick of a clock;
- a small change is cheap: top redrawing its table in an xterm (15 % of the screen, every
  second) never waits; tiny changes (a clock, typing) go at most 1 / LOOK_COST a second;
- a screen that changes whole all the time is held to one picture every
  (1 + LOOK_COST) / rate seconds: a video or a full-screen terminal is paced, and so are the
  bytes it sends to every Dashboard;
- a burst is bounded: after a quiet spell at most ``burst`` screens' worth, then the rate.

Pure arithmetic on a clock the caller passes, so the rule is tested without a screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from polydesk.thumbnails.geometry import Box

LOOK_COST = 0.5  # screens: what a look costs besides what changed
GATHER_S = 0.02  # a change is looked at this long after it began: one redraw, one picture


@dataclass
class Budget:
    """One feed's bucket, in screens. ``rate``: screens per second (inf: no limit)."""

    rate: float
    burst: float = 1.0
    level: float = field(init=False)
    at: float | None = None  # when ``level`` was last brought up to date

    def __post_init__(self) -> None:
        self.level = self.burst

    @classmethod
    def every(cls, interval: float) -> Budget:
        """A budget of one whole screen per ``interval`` seconds."""
        return cls(1.0 / interval if interval > 0 else math.inf)

    def wait(self, now: float) -> float:
        """Seconds until the next look may be made (0: at once)."""
        self._refill(now)
        if self.level >= 0 or math.isinf(self.rate):
            return 0.0
        return -self.level / self.rate

    def spend(self, changed: float, now: float) -> None:
        """A look was made that changed ``changed`` of the screen (0 to 1)."""
        self._refill(now)
        self.level -= LOOK_COST + changed

    def _refill(self, now: float) -> None:
        if self.at is not None:
            self.level = min(self.burst, self.level + max(0.0, now - self.at) * self.rate)
        self.at = now


def share(parts: dict[str, Box | None], sizes: dict[str, tuple[int, int]]) -> float:
    """The largest share (0 to 1) of a thumbnail the ``parts`` changed, over the sizes."""
    shares = [0.0]
    for size, box in parts.items():
        if box is not None and size in sizes:
            width, height = sizes[size]
            shares.append((box[2] - box[0]) * (box[3] - box[1]) / max(1, width * height))
    return min(1.0, max(shares))
