"""How soon a session's screen is looked at again: a budget per feed, counted in screens.

A look costs a fixed part (round trips to the X server, a message to every watcher) plus
the share of the screen it read: reading, scaling, comparing, encoding and sending all grow
with it (a screen redrawn with the same pixels costs the read, though no picture comes of
it). So each feed holds a bucket of ``burst`` screens, refilled at ``rate`` screens a second;
a look is made as soon as the bucket is not in debt, and its cost is taken out afterwards
(what was damaged is known only then). With the default one screen a second this gives:

- the first change after a quiet spell is looked at at once (the leading edge), not at the
  next tick of a clock;
- a small change is cheap: top redrawing its table in an xterm (15 % of the screen, every
  second) never waits; tiny changes (a clock, typing) go at most 1 / LOOK_COST a second;
- a screen that changes whole all the time is held to one picture every
  (1 + LOOK_COST) / rate seconds: a video or a full-screen terminal is paced, and so are the
  CPU it costs and the bytes it sends to every Dashboard;
- a burst is bounded: after a quiet spell at most ``burst`` screens' worth (two: a second
  whole change soon after a first, as a window opened then filled, still shows at once),
  then the rate.

The same bucket, counted in bytes, holds a Dashboard page to ``dashboard_picture_kbps``
(``web/routes/events``). Pure arithmetic on a clock the caller passes, so the rules are tested
without a screen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

LOOK_COST = 0.5  # screens: what a look costs besides what it read
BURST = 2.0  # screens a feed may spend at once after a quiet spell
GATHER_S = 0.02  # a change is looked at this long after it began: one redraw, one picture


@dataclass
class Budget:
    """A bucket: ``burst`` units at most, refilled at ``rate`` units a second (inf: no limit);
    a feed's counts screens."""

    rate: float
    burst: float = BURST
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

    def spend(self, read: float, now: float) -> None:
        """A look was made that read ``read`` of the screen (0 to 1)."""
        self.take(LOOK_COST + read, now)

    def take(self, amount: float, now: float) -> None:
        """``amount`` units were used: the bucket may go into debt, which ``wait`` pays back."""
        self._refill(now)
        self.level -= amount

    def _refill(self, now: float) -> None:
        if self.at is not None:
            self.level = min(self.burst, self.level + max(0.0, now - self.at) * self.rate)
        self.at = now
