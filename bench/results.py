"""Where the benchmarks write their figures.

``latest.json`` holds exactly the suite's keys (``python -m bench``, issue 5);
``sessions-100.json`` a copy of its 100-session run; ``fleet.json`` the fleet
benchmark's figures (``python -m bench.fleet``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
LATEST = RESULTS / "latest.json"
FLEET = RESULTS / "fleet.json"


def write(path: Path, figures: dict[str, Any]) -> None:
    """Replace ``path`` with ``figures`` (keys in the order given)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2) + "\n")


def merge(path: Path, figures: dict[str, Any]) -> None:
    """Add ``figures`` to what ``path`` holds (a benchmark that measures some figures of many)."""
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(figures)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
