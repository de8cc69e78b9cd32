"""Named stations, as MultiPoint shows them: each browser station has a name, kept.

A browser becomes a station the first time it opens the station page: it gets a
row here ("Station 7") and a signed cookie naming the row and its nonce
(web/station_ids.py), so a page reload, a restart or the next day find the same
station. An administrator renames it; the cards of the sessions at it follow.
A logind seat is a station already: its name is the seat's (not renamed here).

A station is *in use* while a session is attached at it (state active, showing
its name); otherwise it is *empty*, and the list says who used it last and when.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from polydesk.core import policy
from polydesk.core.model import (
    Action,
    Caller,
    InvalidRequest,
    NotPermitted,
    Session,
    SessionState,
    StoreError,
    UnknownName,
)
from polydesk.core.texts import check_text
from polydesk.manager.audit import AuditLog
from polydesk.store.store import Store

log = logging.getLogger(__name__)

MAX_NAME = 64
# A browser that throws its cookie away gets a new station each time: a student doing that in a
# loop must not grow the list (and the database) without end. Past this, new browsers go unnamed.
MAX_STATIONS = 2000
SEAT_PREFIX = "seat:"


@dataclass(frozen=True)
class StationInfo:
    id: str  # "7": a browser station; "seat:seat1": a logind seat
    name: str
    kind: str  # "browser" or "seat"
    created: float | None
    last_used: float | None
    last_user: str | None
    session_id: str | None  # the session at it now; None: the station is empty
    user: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class StationBook:
    def __init__(self, store: Store, audit: AuditLog, renamed: Callable[[str, str], None]) -> None:
        self.store = store
        self.audit = audit
        self._renamed = renamed  # the manager's: live sessions at the station show the new name

    # the browser station's own life: made on first use, attached to sessions

    def new(self, default_name: Callable[[int], str]) -> tuple[int, str] | None:
        """A new station (id, nonce), named ``default_name(id)`` ("Station 7" in the page's language);
        None when there are MAX_STATIONS already."""
        if self.store.read("SELECT count(*) FROM stations")[0][0] >= MAX_STATIONS:
            return None
        nonce = secrets.token_urlsafe(18)
        # The id is only known once the row exists; a unique placeholder holds the name until then.
        cursor = self.store.write(("INSERT INTO stations (name, nonce, created) VALUES (?, ?, ?)",
                                   (f"\x00{nonce}", nonce, time.time())))
        station_id = int(cursor.lastrowid or 0)
        name = default_name(station_id)
        if self._id_named(name) is not None:  # an administrator gave that name to another one
            name = f"{name} ({nonce[:4]})"
        self.store.write(("UPDATE stations SET name = ? WHERE id = ?", (name, station_id)))
        return station_id, nonce

    def nonce(self, station_id: int) -> str | None:
        rows = self.store.read("SELECT nonce FROM stations WHERE id = ?", (station_id,))
        return str(rows[0][0]) if rows else None

    def attach(self, station_id: int, session: Session) -> str | None:
        """``session``'s user is at station ``station_id`` now: its name, None if there is no such row."""
        rows = self.store.read("SELECT name FROM stations WHERE id = ?", (station_id,))
        if not rows:
            return None
        try:
            self.store.write(("UPDATE stations SET last_used = ?, last_user = ?, session_id = ? WHERE id = ?",
                              (time.time(), session.user, session.id, station_id)))
        except StoreError as exc:  # a full disk: the desktop still opens; only "last used" waits
            log.warning("station %d: its last use could not be saved: %s", station_id, exc)
        return str(rows[0][0])

    # the use cases: list (Dashboard users, administrators) and rename (administrators)

    def listing(self, caller: Caller, sessions: list[Session]) -> list[StationInfo]:
        self._require(caller, Action.STATIONS)
        at = {s.station: s for s in sessions if s.station and s.state == SessionState.ACTIVE}
        found = []
        for sid, name, created, last_used, last_user, session_id in self.store.read(
                "SELECT id, name, created, last_used, last_user, session_id FROM stations ORDER BY id"):
            now = at.get(name)
            here = now is not None and now.id == session_id
            found.append(StationInfo(str(sid), name, "browser", created, last_used, last_user,
                                     session_id if here else None, now.user if here and now else None))
        for session in sessions:  # a seat is known while logind has a session on it
            seat = (session.backend_data.get("details") or {}).get("seat")
            if seat and not any(f.id == SEAT_PREFIX + seat for f in found):
                found.append(StationInfo(SEAT_PREFIX + seat, seat, "seat", None, session.logon_time,
                                         session.user, session.id, session.user))
        return found

    def rename(self, caller: Caller, station_id: str, name: object) -> StationInfo:
        decision = policy.may_global(caller, Action.RENAME_STATION)
        if not decision:
            self._audit(caller, station_id, False, decision.reason, {"name": _printable(name)})
            raise NotPermitted(decision.reason)
        if station_id.startswith(SEAT_PREFIX):
            raise InvalidRequest("a seat's name is logind's (loginctl): it is not renamed here")
        new = one_line("name", name)
        rows = self.store.read("SELECT name FROM stations WHERE id = ?", (_number(station_id),))
        if not rows:
            raise UnknownName(f"no station with id {station_id!r}")
        old = str(rows[0][0])
        other = self._id_named(new)
        if other is not None and other != _number(station_id):
            raise InvalidRequest(f"another station (id {other}) is called {new!r}: choose another name")
        self.store.write(("UPDATE stations SET name = ? WHERE id = ?", (new, _number(station_id))))
        self._audit(caller, station_id, True, None, {"from": old, "to": new})
        if old != new:
            self._renamed(old, new)
        return next(s for s in self.listing(caller, []) if s.id == station_id)

    # helpers

    def _id_named(self, name: str) -> int | None:
        rows = self.store.read("SELECT id FROM stations WHERE name = ?", (name,))
        return int(rows[0][0]) if rows else None

    def _require(self, caller: Caller, action: Action) -> None:
        decision = policy.may_global(caller, action)
        if not decision:
            raise NotPermitted(decision.reason)

    def _audit(self, caller: Caller, station_id: str, allowed: bool, reason: str | None,
               detail: dict[str, Any]) -> None:
        status = "renamed" if allowed else "not-permitted"
        self.audit.write(caller, Action.RENAME_STATION, [station_id],
                         [{"id": station_id, "status": status, "user": None, "reason": reason}],
                         allowed=allowed, reason=reason, detail=detail)


def one_line(field: str, value: object) -> str:
    """A name: text (texts.check_text) on one line, without spaces around it."""
    text = (check_text(field, value, max_length=MAX_NAME, required=True) or "").strip()
    if any(c in text for c in "\t\n\r"):
        raise InvalidRequest(f"{field}: a name is one line, without tabs")
    return text


def _number(station_id: str) -> int:
    if not station_id.isdecimal() or len(station_id) > 18:
        raise UnknownName(f"no station with id {station_id!r}")
    return int(station_id)


def _printable(value: object) -> str:
    """What a refused caller asked for, as the audit keeps it: text, cut short."""
    return str(value)[:MAX_NAME * 2]
