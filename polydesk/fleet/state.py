"""This host's picture of the fleet: the key-value bucket, mirrored in memory.

A watcher on the bucket feeds ``apply``; listing the fleet is then a read of
memory, however many hosts there are. Liveness is judged here, by this host's
own clock: a host is online while its heartbeats keep arriving, so clocks that
disagree between hosts cannot make a dead host look alive. Entries that stop
being refreshed are dropped after ``stale_after``, as the bucket itself drops
them (the server removes them silently, so the mirror must too).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from polydesk.fleet.wire import parse_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostView:
    name: str
    online: bool
    local: bool
    sessions: int
    last_seen_s: float | None  # seconds since its last heartbeat arrived
    listen: str | None
    public_key: str | None
    state: str  # what the host last said of itself: online | offline (stopped cleanly)


@dataclass
class _Entry:
    value: dict[str, Any]
    seen: float  # this host's monotonic clock when the entry arrived (or its estimated age at startup)
    fragment: bytes | None = None  # the session as listed, as JSON without its closing brace


@dataclass(frozen=True)
class Listed:
    """A session of another host as the fleet listing shows it."""

    host: str
    value: dict[str, Any]
    fragment: bytes  # JSON of the value with id host/id and fleet_host, open at the end


class FleetMirror:
    def __init__(self, local: str, trusted: Mapping[str, str], offline_after: float, stale_after: float,
                 clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self.local = local
        self.trusted = dict(trusted)  # host name -> public key; others' entries are ignored
        self.offline_after = offline_after
        self.stale_after = stale_after
        self._clock = clock
        self._wall = wall
        self._hosts: dict[str, _Entry] = {}
        self._sessions: dict[str, dict[str, _Entry]] = {}
        self._snapshot: set[str] | None = None  # keys not yet seen again during a resync
        self._ignored: set[str] = set()

    # feeding

    def apply(self, key: str, value: bytes | None, created: float | None = None) -> None:
        """One update of the bucket: ``value`` None for a deleted key; ``created`` (epoch seconds,
        the server's) dates entries of the initial snapshot, whose arrival says nothing of their age."""
        parsed = parse_key(key)
        if parsed is None:
            return
        kind, host, session_id = parsed
        if host not in self.trusted:
            if host not in self._ignored:
                self._ignored.add(host)
                log.warning("fleet: ignoring host %r, which is not in fleet.trusted_hosts", host)
            return
        if self._snapshot is not None:
            self._snapshot.discard(key)
        seen = self._clock()
        if created is not None:
            seen -= max(0.0, self._wall() - created)
        decoded = _decode(value) if value else None
        if kind == "host":
            if decoded is None:
                self._hosts.pop(host, None)
            elif decoded.get("public_key") not in (None, self.trusted[host]):
                log.warning("fleet: host record of %r carries another key than the trusted one", host)
            else:
                self._hosts[host] = _Entry(decoded, seen)
            return
        assert session_id is not None
        sessions = self._sessions.setdefault(host, {})
        if decoded is None:
            sessions.pop(session_id, None)
        else:
            sessions[session_id] = _Entry(decoded, seen)

    def begin_resync(self) -> None:
        """A fresh watcher replays every key: whatever it does not replay is gone."""
        self._snapshot = {f"host.{h}" for h in self._hosts} | {
            f"session.{h}.{i}" for h, ids in self._sessions.items() for i in ids}

    def end_resync(self) -> None:
        gone, self._snapshot = self._snapshot or set(), None
        for key in gone:
            self.apply(key, None)

    def expire(self) -> None:
        """Forget what the bucket has dropped by age, and the sessions of hosts it forgot.

        A host's sessions may arrive before its record (a host publishes its sessions first),
        so sessions of a host not known yet are kept: only their own age removes them."""
        limit = self._clock() - self.stale_after
        gone = {h for h, e in self._hosts.items() if e.seen < limit}
        for host in gone:
            del self._hosts[host]
            self._sessions.pop(host, None)
        for host in list(self._sessions):
            kept = {i: e for i, e in self._sessions[host].items() if e.seen >= limit}
            if kept:
                self._sessions[host] = kept
            else:
                del self._sessions[host]

    # reading

    def online(self, host: str) -> bool:
        entry = self._hosts.get(host)
        return (entry is not None and entry.value.get("state") == "online"
                and self._clock() - entry.seen <= self.offline_after)

    def known(self, host: str) -> bool:
        return host in self._hosts

    def seen_at(self, host: str) -> float | None:
        """When (monotonic) the host's last heartbeat arrived: this host's own ones coming back
        show that the watcher still delivers."""
        entry = self._hosts.get(host)
        return None if entry is None else entry.seen

    def hosts(self) -> list[HostView]:
        views = []
        for name, entry in sorted(self._hosts.items()):
            views.append(HostView(
                name=name, online=self.online(name), local=name == self.local,
                sessions=len(self._sessions.get(name, {})),
                last_seen_s=round(self._clock() - entry.seen, 1),
                listen=entry.value.get("listen"), public_key=entry.value.get("public_key"),
                state=str(entry.value.get("state", "online")),
            ))
        return views

    def sessions(self, host: str) -> list[dict[str, Any]]:
        if host not in self._hosts:
            return []
        return [e.value for _, e in sorted(self._sessions.get(host, {}).items(), key=_by_id)]

    def listed(self, host: str) -> list[Listed]:
        """The host's sessions with their JSON made once per change: a listing of thousands of
        sessions then only joins bytes (heartbeats change no session)."""
        if host not in self._hosts:
            return []
        found = []
        for session_id, entry in sorted(self._sessions.get(host, {}).items(), key=_by_id):
            if entry.fragment is None:
                shown = {**entry.value, "id": f"{host}/{session_id}", "fleet_host": host}
                entry.fragment = json.dumps(shown, separators=(",", ":"))[:-1].encode()
            found.append(Listed(host, entry.value, entry.fragment))
        return found

    def session(self, host: str, session_id: str) -> dict[str, Any] | None:
        entry = self._sessions.get(host, {}).get(session_id) if host in self._hosts else None
        return entry.value if entry is not None else None

    def session_ids(self, host: str) -> set[str]:
        return set(self._sessions.get(host, {}))


def _decode(value: bytes) -> dict[str, Any] | None:
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def _by_id(item: tuple[str, _Entry]) -> tuple[int, str]:
    """Numeric ids in numeric order (2 before 10), any others after them."""
    return (int(item[0]), "") if item[0].isdigit() else (1 << 62, item[0])
