"""Listing the fleet's sessions: the whole list as one JSON answer, or one page of it, filtered.

Fifty thousand sessions are listed by copying bytes: each host's sessions are kept as JSON made
once per change (``state.HostSessions``), and a host where the caller has no session of their
own is copied whole. A page walks the hosts in the listing's order (this host first, then the
others by name; each host's sessions by id) from where the previous page ended, so a page costs
what it shows, plus a count of what matches (``total``).

A cursor names the last session of a page, the query it belongs to and when it was made, signed
with a key of this daemon's run: a forged, altered or foreign cursor, or one older than
``CURSOR_LIFETIME_S``, is refused. Naming a place rather than a number keeps pages stable while
sessions come and go: a session present throughout is listed once, never twice or skipped.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import secrets
import time
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from polydesk.core.model import Caller, InvalidRequest, Role
from polydesk.fleet.state import (
    FRAGMENT,
    HOST,
    ID,
    KEY,
    USER,
    FleetMirror,
    HostSessions,
    Row,
    id_key,
    make_row,
    row_matches,
)

MAX_PAGE = 500  # sessions in one page at most
MAX_QUERY = 200  # characters of a search
CURSOR_LIFETIME_S = 900.0
STATES = ("active", "disconnected", "logging-off", "blocked")  # what ?state= may name
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def may_list(caller: Caller, session: dict[str, Any]) -> bool:
    """Listing another host's sessions: as policy.may_see, by user name (uids differ between hosts)."""
    return caller.role != Role.STANDARD or session.get("user") == caller.user


@dataclass(frozen=True)
class Query:
    """Which sessions a listing shows: of one host, matching a search, in one state."""

    host: str | None = None
    q: str | None = None
    state: str | None = None

    @classmethod
    def checked(cls, host: str | None = None, q: str | None = None, state: str | None = None) -> Query:
        """The query, or InvalidRequest naming the parameter that cannot be one."""
        if q is not None:
            if len(q) > MAX_QUERY:
                raise InvalidRequest(f"q: a search is at most {MAX_QUERY} characters")
            bad = _CONTROL.search(q)
            if bad is not None:
                raise InvalidRequest(f"q: control character U+{ord(bad.group()):04X} at position "
                                     f"{bad.start()}; a search is one line of text")
            q = q.strip().lower() or None
        if state is not None and state not in STATES:
            raise InvalidRequest(f"state: must be one of {', '.join(STATES)}, not {state[:40]!r}")
        return cls(host, q, state)

    @property
    def plain(self) -> bool:
        return self.q is None and self.state is None

    def matches(self, row: Row) -> bool:
        return row_matches(row, self.q, self.state)

    def may_match(self, host: HostSessions) -> bool:
        """False when none of the host's sessions can match: a search skips most hosts whole."""
        if self.state is not None and not host.states().get(self.state):
            return False
        return self.q is None or self.q in host.text()

    def fingerprint(self) -> str:
        text = json.dumps([self.host, self.q, self.state])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class Cursors:
    """Opaque cursors, signed with a key made at this daemon's start."""

    def __init__(self, key: bytes | None = None, wall: Callable[[], float] = time.time) -> None:
        self._key = key or secrets.token_bytes(32)
        self._wall = wall

    def make(self, query: Query, host: str, session_id: str) -> str:
        payload = json.dumps({"h": host, "i": session_id, "f": query.fingerprint(), "t": int(self._wall())},
                             separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def read(self, query: Query, cursor: str) -> tuple[str, str]:
        """(host, id) of the last session of the page the cursor follows, or InvalidRequest."""
        body, dot, signature = cursor.partition(".")
        try:
            payload, given = _unb64(body), _unb64(signature)
        except (binascii.Error, ValueError):
            payload, given = b"", b""
        if not dot or not hmac.compare_digest(given, self._sign(payload)):
            raise InvalidRequest("cursor: not a cursor this daemon gave (altered, or from before it "
                                 "restarted); list again without it")
        data = json.loads(payload)
        if data.get("f") != query.fingerprint():
            raise InvalidRequest("cursor: it belongs to another query (host, q or state differ); "
                                 "give the same filters, or list again without it")
        if self._wall() - float(data.get("t", 0)) > CURSOR_LIFETIME_S:
            raise InvalidRequest(f"cursor: older than {CURSOR_LIFETIME_S:.0f} s; list again without it")
        return str(data["h"]), str(data["i"])

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Here:
    """This host's sessions as the caller may see them (from the manager, which applied its
    rules), in the listing's order and form, and which are the caller's own (by uid)."""

    rows: list[Row]
    own: frozenset[str]

    @classmethod
    def of(cls, host: str, sessions: list[dict[str, Any]], caller: Caller) -> Here:
        """``sessions`` as events.public_session gives them."""
        rows = sorted((make_row(host, str(s["id"]), s) for s in sessions), key=lambda row: row[KEY])
        return cls(rows, frozenset(str(s["id"]) for s in sessions if s.get("uid") == caller.uid))


NOTHING_HERE = Here([], frozenset())


class Listing:
    def __init__(self, mirror: FleetMirror, cursors: Cursors | None = None) -> None:
        self.mirror = mirror
        self.cursors = cursors or Cursors()

    def everything(self, caller: Caller, here: Here, query: Query) -> list[bytes]:
        """Every session the query matches, as a JSON list in pieces (their concatenation):
        fifty thousand sessions are 20 MB, best sent a piece at a time, never joined."""
        chunks: list[bytes] = [b"["]
        for _host, online, rows, cache in self._hosts(here.rows, query.host):
            if cache is not None and query.plain and caller.role != Role.STANDARD \
                    and caller.user not in cache.users():
                if rows:
                    chunks += (cache.blob(online), b",")
                continue
            for row in self._kept(caller, query, rows, cache):
                chunks += (self._closed(caller, here, row, online), b",")
        if len(chunks) > 1:
            chunks.pop()
        chunks.append(b"]")
        return chunks

    def page(self, caller: Caller, here: Here, query: Query, limit: int, cursor: str | None) -> bytes:
        """``limit`` sessions after ``cursor``, as ``{"sessions": [...], "next": ..., "total": N}``."""
        after = self.cursors.read(query, cursor) if cursor else None
        place = (self._rank(after[0]), after[0], id_key(after[1])) if after else None
        items: list[bytes] = []
        last: Row | None = None
        total, more = 0, False
        for host, online, every, cache in self._hosts(here.rows, query.host):
            rows = self._kept(caller, query, every, cache)
            total += len(rows)
            if more or not rows:
                continue
            start = 0
            if place is not None:
                here_at = (self._rank(host), host)
                if here_at < place[:2]:
                    continue
                if here_at == place[:2]:
                    start = bisect_right(rows, place[2], key=lambda row: row[KEY])
            for row in rows[start:]:
                if len(items) == limit:
                    more = True
                    break
                items.append(self._closed(caller, here, row, online))
                last = row
        following = self.cursors.make(query, last[HOST], last[ID]) if more and last is not None else None
        return (b'{"sessions":[' + b",".join(items) + b'],"next":' + json.dumps(following).encode()
                + b',"total":%d}' % total)

    def _kept(self, caller: Caller, query: Query, rows: list[Row], cache: HostSessions | None) -> list[Row]:
        """The host's sessions that the query keeps and the caller may see, in order."""
        if cache is None:  # this host's: the manager already applied the caller's role
            return rows if query.plain else [row for row in rows if query.matches(row)]
        if caller.role == Role.STANDARD and caller.user not in cache.users():
            return []
        if not query.plain:
            rows = cache.matching(query.q, query.state) if query.may_match(cache) else []
        if caller.role == Role.STANDARD:
            rows = [row for row in rows if row[USER] == caller.user]
        return rows

    # the hosts in the listing's order

    def _rank(self, host: str) -> int:
        return 0 if host == self.mirror.local else 1

    def _hosts(self, here: list[Row], only: str | None
               ) -> Iterator[tuple[str, bool, list[Row], HostSessions | None]]:
        if only in (None, self.mirror.local):
            yield self.mirror.local, True, here, None
        for name in self.mirror.names() if only is None else [only]:
            cache = self.mirror.of_host(name) if name != self.mirror.local else None
            if cache is not None:
                yield name, self.mirror.online(name), cache.rows(), cache

    def _closed(self, caller: Caller, here: Here, row: Row, online: bool) -> bytes:
        own = row[ID] in here.own if row[HOST] == self.mirror.local else row[USER] == caller.user
        return row[FRAGMENT] + b',"own":%s,"host_online":%s}' % (
            b"true" if own else b"false", b"true" if online else b"false")
