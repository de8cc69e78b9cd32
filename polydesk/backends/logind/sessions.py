"""A logind session as Polydesk knows it: which one it is (``Ref``, its key), how it is
reported to the manager (``discovered``), and what the backend watches of it (``Live``)."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field

from polydesk.backends.base import Discovered
from polydesk.backends.logind.dbus import SessionInfo
from polydesk.backends.logind.local import kind_of
from polydesk.core.model import BackendError, Session
from polydesk.core.screen import Screen

SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
SCREEN_TTL = 10.0  # seconds a found (or missing) X display is trusted before looking again


@dataclass(frozen=True)
class Ref:
    """Which logind session a Polydesk session is, from its backend_data."""

    logind_id: str
    path: str
    key: str

    @classmethod
    def of(cls, session: Session) -> Ref:
        data = session.backend_data
        logind_id, path, key = data.get("logind_id"), data.get("logind_path"), data.get("key")
        if not isinstance(logind_id, str) or not SAFE_ID.fullmatch(logind_id) or not path or not key:
            raise BackendError(f"session {session.id} has no usable logind backend data")
        return cls(logind_id, str(path), str(key))

    @property
    def dirname(self) -> str:
        """A file name unique to this session, even across reboots (the key's tail is its start time)."""
        return f"{self.logind_id}-{self.key.rsplit('/', 1)[-1]}"


def session_key(info: SessionInfo, boot_id: str) -> str:
    return f"{boot_id}/{info.id}/{info.timestamp_us}"


def client_of(info: SessionInfo) -> str | None:
    if info.remote:
        return info.remote_host or "remote"
    return " ".join(part for part in (info.seat, info.tty) if part) or None


def discovered(info: SessionInfo, boot_id: str) -> Discovered:
    return Discovered(
        key=session_key(info, boot_id), user=info.user, uid=info.uid,
        logon_time=info.timestamp_us / 1e6 if info.timestamp_us > 0 else time.time(),
        display=info.display or None, client=client_of(info),
        data={
            "logind_id": info.id, "logind_path": info.path, "seat": info.seat, "tty": info.tty,
            "type": kind_of(info), "class": info.session_class, "remote": info.remote,
            "remote_host": info.remote_host, "remote_user": info.remote_user,
            "service": info.service, "leader": info.leader, "vtnr": info.vtnr,
            "desktop": info.desktop,
            "details": {  # shown by the API and the CLI (Session.backend_data is otherwise private)
                "logind_id": info.id, "seat": info.seat, "tty": info.tty, "type": kind_of(info),
                "class": info.session_class, "remote": info.remote, "remote_host": info.remote_host,
                "service": info.service,
            },
        },
    )


@dataclass
class Live:
    """A logind session the backend watches."""

    info: SessionInfo
    key: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    screen_at: float = -SCREEN_TTL
    screen: Screen | None = None
    screen_why: str | None = None


def describe(info: SessionInfo) -> str:
    where = "remote" if info.remote else "local"
    service = f", {info.service}" if info.service else ""
    return f"{where} {kind_of(info)}{service}"
