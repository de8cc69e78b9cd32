"""Sizes in the configuration: a share of this machine's RAM or a number of bytes with a unit.

Read where the settings are checked (config/check.py) and where they are used (app.py builds
the session limits of system/cgroups.py from them): one reading of the words for both.
"""

from __future__ import annotations

import os
import re

_SIZE = re.compile(r"(\d+)\s*([KMGT]?)i?B?", re.IGNORECASE)
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def memory_size(text: str, ram: int | None = None) -> int:
    """``"50%"`` (of this machine's RAM), ``"512M"``, ``"2G"``, ``"1073741824"``; ``""`` or ``"0"`` = 0."""
    text = text.strip()
    if text in ("", "0"):
        return 0
    percent = _PERCENT.fullmatch(text)
    if percent:
        share = float(percent.group(1))
        if not 0 < share <= 100:
            raise ValueError(f"{text!r}: a share of RAM is more than 0% and at most 100%")
        total = ram if ram is not None else os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return int(total * share / 100)
    size = _SIZE.fullmatch(text)
    if size is None:
        raise ValueError(f"{text!r} is not a size: give a share of RAM (50%) or a size (512M, 2G)")
    return int(size.group(1)) * _UNITS[size.group(2).upper()]
