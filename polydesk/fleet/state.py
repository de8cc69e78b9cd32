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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

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
    states: dict[str, int] = field(default_factory=dict)  # its sessions by state, and how many blocked


@dataclass
class _Entry:
    value: dict[str, Any]
    seen: float  # this host's monotonic clock when the entry arrived (or its estimated age at startup)


# A session of another host as listed: what listing, filtering and searching need of it, as a
# plain tuple of strings, numbers and bytes: the garbage collector drops such a tuple from its
# passes, so fifty thousand of them cost those passes nothing (the sessions' parsed JSON, or
# objects of a class of our own, made every full pass take a fifth of a second).
Row = tuple[str, str, tuple[int, str], str, str, bool, bytes, str]
HOST: Final = 0
ID: Final = 1
KEY: Final = 2  # its place in the host's order
USER: Final = 3
STATE: Final = 4
BLOCKED: Final = 5
FRAGMENT: Final = 6  # its JSON with id host/id and fleet_host, open at the end
HAYSTACK: Final = 7  # what a search looks in, lower case: host/id, user, client, display, station


def row_value(row: Row) -> dict[str, Any]:
    """The session as its host published it."""
    found: dict[str, Any] = json.loads(row[FRAGMENT] + b"}")
    found.pop("fleet_host", None)
    return {**found, "id": row[ID]}


def count_states(sessions: Iterable[tuple[str, bool]]) -> dict[str, int]:
    """How many of (state, blocked) are in each state; ``blocked`` counts the blocked ones besides."""
    counts: dict[str, int] = {}
    for state, blocked in sessions:
        counts[state] = counts.get(state, 0) + 1
        if blocked:
            counts["blocked"] = counts.get("blocked", 0) + 1
    return counts


def row_matches(row: Row, q: str | None, state: str | None) -> bool:
    """Whether a search (lower case) finds the session, and it is in ``state`` (``blocked``: blocked)."""
    if q is not None and q not in row[HAYSTACK]:
        return False
    if state == "blocked":
        return row[BLOCKED]
    return state is None or row[STATE] == state


def make_row(host: str, session_id: str, value: dict[str, Any]) -> Row:
    shown = {**value, "id": f"{host}/{session_id}", "fleet_host": host}
    return (host, session_id, id_key(session_id), str(value.get("user")), str(value.get("state")),
            bool(value.get("blocked")), json.dumps(shown, separators=(",", ":"))[:-1].encode(),
            haystack(host, value))


class HostSessions:
    """One host's mirrored sessions, and what listing them needs, made once per change of them.

    Heartbeats change no session, so between two changes a listing of this host only copies
    bytes: its sessions in order, each as JSON made once, and the whole host joined once per
    online state (a caller who has no session here sees every ``own`` false)."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.entries: dict[str, tuple[Row, float, int]] = {}  # id -> (row, seen, hash of the value)
        self._rows: list[Row] | None = None
        self._blobs: dict[bool, bytes] = {}
        self._users: frozenset[str] | None = None
        self._states: dict[str, int] | None = None
        self._text: str | None = None
        self._matching: dict[tuple[str | None, str | None], list[Row]] = {}

    def changed(self) -> None:
        self._rows, self._users, self._states, self._text = None, None, None, None
        self._blobs.clear()
        self._matching.clear()

    def matching(self, q: str | None, state: str | None) -> list[Row]:
        """The sessions a search (lower case) and a state keep, in order: kept for the few last
        filters until the next change, as a page that refreshes asks for the same again."""
        key = (q, state)
        found = self._matching.get(key)
        if found is None:
            if len(self._matching) >= 4:
                self._matching.clear()
            found = self._matching[key] = [row for row in self.rows() if row_matches(row, q, state)]
        return found

    def rows(self) -> list[Row]:
        """The sessions in id order (numeric ids numerically)."""
        if self._rows is None:
            self._rows = sorted((row for row, _, _ in self.entries.values()), key=lambda row: row[KEY])
        return self._rows

    def blob(self, online: bool) -> bytes:
        """Every session closed as listed to a caller who has none of them, joined by commas."""
        if online not in self._blobs:
            tail = b',"own":false,"host_online":%s}' % (b"true" if online else b"false")
            self._blobs[online] = b",".join(row[FRAGMENT] + tail for row in self.rows())
        return self._blobs[online]

    def users(self) -> frozenset[str]:
        if self._users is None:
            self._users = frozenset(row[USER] for row, _, _ in self.entries.values())
        return self._users

    def text(self) -> str:
        """Every session's search text at once: a search skips a host that has it nowhere."""
        if self._text is None:
            self._text = "\n".join(row[HAYSTACK] for row in self.rows())
        return self._text

    def states(self) -> dict[str, int]:
        """How many sessions are in each state; ``blocked`` counts the blocked ones besides."""
        if self._states is None:
            self._states = count_states((row[STATE], row[BLOCKED]) for row, _, _ in self.entries.values())
        return self._states


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
        self._names: list[str] | None = None  # sorted(self._hosts), made once per host come or gone
        self._sessions: dict[str, HostSessions] = {}
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
                if self._hosts.pop(host, None) is not None:
                    self._names = None
            elif decoded.get("public_key") not in (None, self.trusted[host]):
                log.warning("fleet: host record of %r carries another key than the trusted one", host)
            else:
                if host not in self._hosts:
                    self._names = None
                self._hosts[host] = _Entry(decoded, seen)
            return
        assert session_id is not None
        sessions = self._sessions.get(host)
        if sessions is None:
            sessions = self._sessions[host] = HostSessions(host)
        if decoded is None:
            if sessions.entries.pop(session_id, None) is not None:
                sessions.changed()
            return
        digest = hash(value)
        before = sessions.entries.get(session_id)
        if before is not None and before[2] == digest:
            sessions.entries[session_id] = (before[0], seen, digest)  # a refresh: listed as it was
            return
        sessions.entries[session_id] = (make_row(host, session_id, decoded), seen, digest)
        sessions.changed()

    def begin_resync(self) -> None:
        """A fresh watcher replays every key: whatever it does not replay is gone."""
        self._snapshot = {f"host.{h}" for h in self._hosts} | {
            f"session.{h}.{i}" for h, ids in self._sessions.items() for i in ids.entries}

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
            self._names = None
        for host, sessions in list(self._sessions.items()):
            old = [i for i, (_, seen, _) in sessions.entries.items() if seen < limit]
            for session_id in old:
                del sessions.entries[session_id]
            if not sessions.entries:
                del self._sessions[host]
            elif old:
                sessions.changed()

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
                sessions=len(self._sessions[name].entries) if name in self._sessions else 0,
                states=dict(self._sessions[name].states()) if name in self._sessions else {},
                last_seen_s=round(self._clock() - entry.seen, 1),
                listen=entry.value.get("listen"), public_key=entry.value.get("public_key"),
                state=str(entry.value.get("state", "online")),
            ))
        return views

    def sessions(self, host: str) -> list[dict[str, Any]]:
        return [row_value(row) for row in self.listed(host)]

    def listed(self, host: str) -> list[Row]:
        """The host's sessions in order, as listed; none for a host whose record is unknown."""
        found = self._sessions.get(host) if host in self._hosts else None
        return found.rows() if found is not None else []

    def of_host(self, host: str) -> HostSessions | None:
        """The host's sessions with their listing caches; None for a host whose record is unknown."""
        return self._sessions.get(host) if host in self._hosts else None

    def session(self, host: str, session_id: str) -> dict[str, Any] | None:
        found = self._sessions.get(host) if host in self._hosts else None
        entry = found.entries.get(session_id) if found is not None else None
        return row_value(entry[0]) if entry is not None else None

    def names(self) -> list[str]:
        """The hosts whose records are known, by name."""
        if self._names is None:
            self._names = sorted(self._hosts)
        return self._names

    def session_ids(self, host: str) -> set[str]:
        found = self._sessions.get(host)
        return set(found.entries) if found is not None else set()


def _decode(value: bytes) -> dict[str, Any] | None:
    try:
        decoded = json.loads(value)
    except ValueError:
        return None
    return decoded if isinstance(decoded, dict) else None


def id_key(session_id: str) -> tuple[int, str]:
    """Numeric ids in numeric order (2 before 10), any others after them."""
    return (int(session_id), "") if session_id.isdigit() and len(session_id) < 18 else (1 << 62, session_id)


def haystack(host: str, value: dict[str, Any]) -> str:
    """What a search matches: the session's id, its user, where it is seen from."""
    words = (f"{host}/{value.get('id', '')}", value.get("user"), value.get("client"), value.get("display"),
             value.get("station"))
    return "\n".join(str(w) for w in words if w).lower()
