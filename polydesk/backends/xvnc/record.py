"""A session's record: everything needed to find its Xvnc and desktop again, after a
daemon restart (``Session.backend_data``) or with the state database lost (``session.json``).

Pids are always paired with their start time so a reused pid is never mistaken for ours.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from polydesk.core.model import BackendError, Session
from polydesk.core.screen import Screen, Server
from polydesk.system import processes as procs
from polydesk.system.tracking import Tracker, Tracking

log = logging.getLogger(__name__)

RECORD = "session.json"


@dataclass(frozen=True)
class Handle:
    """Everything about one running session; stored as Session.backend_data (JSON)."""

    session_id: str
    user: str
    uid: int
    gid: int
    display: str
    display_number: int
    session_dir: str
    xauthority: str
    rfb_socket: str
    xdg_runtime_dir: str
    boot_id: str
    tracking: str
    cgroup_base: str | None
    cgroup_controller: str | None
    cgroup: str | None
    xvnc_pid: int | None = None
    xvnc_start: int | None = None
    desktop_pid: int | None = None
    desktop_start: int | None = None
    # Names the session's cgroup and marker. Unique per start, so two daemons on one
    # machine (tests, a restored state directory) never share a cgroup for "session 1".
    track_key: str = ""

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session(cls, session: Session) -> Handle:
        data = session.backend_data
        try:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
        except TypeError as exc:
            raise BackendError(f"session {session.id} has no usable Xvnc backend data: {exc}") from exc

    def with_(self, **changes: Any) -> Handle:
        return Handle(**{**asdict(self), **changes})

    @property
    def dir(self) -> Path:
        return Path(self.session_dir)

    @property
    def screen(self) -> Screen:
        return Screen(self.display, self.xauthority, self.xvnc_pid, self.xvnc_start)

    @property
    def xvnc(self) -> Server:
        return Server(self.xvnc_pid, self.xvnc_start)

    def tracker(self) -> Tracker:
        chosen = Tracking.from_data(asdict(self))
        return chosen.tracker(self.track_key or self.session_id, self.leaders())

    def leaders(self) -> list[tuple[int, int]]:
        return [(pid, started) for pid, started in ((self.xvnc_pid, self.xvnc_start),
                                                     (self.desktop_pid, self.desktop_start))
                if pid is not None and started is not None]

    def same_boot(self) -> bool:
        return self.boot_id == procs.boot_id()

    def xvnc_running(self) -> bool:
        return (self.xvnc_pid is not None and self.same_boot()
                and procs.is_running(self.xvnc_pid, self.xvnc_start))


def write_record(handle: Handle) -> None:
    """What `polydesk serve --recover` needs if the state database is lost (root only)."""
    path = handle.dir / RECORD
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"handle": handle.to_data(), "logon_time": time.time()}, fh)


def read_records(runtime_dir: Path) -> Iterator[tuple[Handle, float]]:
    """Every readable record under ``runtime_dir``, with its session's log-on time."""
    for record in sorted((runtime_dir / "sessions").glob(f"*/{RECORD}")):
        try:
            saved = json.loads(record.read_text())
            handle = Handle(**saved["handle"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("cannot read %s: %s", record, exc)
            continue
        yield handle, saved["logon_time"]
