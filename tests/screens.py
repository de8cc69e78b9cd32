"""Drawing on a session's screen from a test: as root, with the session's cookie."""

from __future__ import annotations

from typing import Any

from polydesk.core.screen import Screen
from polydesk.system.x11.client import connection
from tests.harness import Daemon


def fill(daemon: Daemon, session_id: str, display: str, box: tuple[int, int, int, int], pixel: int) -> None:
    """Paint a rectangle (left, top, right, bottom) of colour 0xRRGGBB straight onto the root
    window."""
    xauthority = daemon.runtime_dir / "sessions" / session_id / "Xauthority"
    with connection(Screen(display, str(xauthority))) as conn:
        root: Any = conn.screen().root
        gc = root.create_gc(foreground=pixel)
        root.fill_rectangle(gc, box[0], box[1], box[2] - box[0], box[3] - box[1])
        gc.free()
        conn.sync()
