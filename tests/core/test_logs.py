"""The daemon's log lets a repeated warning through a few times, then counts it (issue 13, point 6)."""

from __future__ import annotations

import io
import logging

from polydesk.core.logs import RepeatLimiter


def test_a_flood_of_one_error_is_cut_and_counted_and_information_is_kept() -> None:
    now = [0.0]
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RepeatLimiter(burst=3, window=60, clock=lambda: now[0]))
    logger = logging.getLogger("pdt-flood")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        for i in range(5000):
            logger.error("accept failed on fd %d", i)
            logger.info("log-on of user%d", i)
        now[0] += 61
        logger.error("accept failed on fd %d", 1)
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    errors = [line for line in lines if line.startswith("accept failed")]
    assert len(errors) == 4
    assert errors[-1] == "accept failed on fd 1 [4997 more like this were not logged]"
    assert sum(line.startswith("log-on of") for line in lines) == 5000
