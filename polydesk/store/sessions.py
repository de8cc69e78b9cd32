"""Sessions in the state database: the live ones, the ended ones (the history), the ids
handed out, and which station was attached to which session, from where, when."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from polydesk.core.model import (
    EndedSession,
    EndReason,
    LogoffPlan,
    Projection,
    Role,
    Session,
    SessionState,
)
from polydesk.core.websites import stored_limit
from polydesk.store.database import Database

_SESSION_COLUMNS = (
    "id, user, uid, role, host, state, logon_time, display, blocked, block_message, client, "
    "host_data, logoff, block_undone, language, station, version, projection, web_limit, hand_raised_at"
)


class SessionTables(Database):
    def new_session_id(self) -> str:
        cursor = self.write(("INSERT INTO session_ids DEFAULT VALUES", ()))
        return str(cursor.lastrowid)

    def reserve_ids(self, up_to: int) -> None:
        """Never hand out ids up to ``up_to`` again (sessions recovered with their old ids)."""
        self.write(("INSERT OR IGNORE INTO session_ids (id) VALUES (?)", (up_to,)))

    def put_session(self, session: Session) -> Session:
        """Store ``session`` as its next version (one more than the stored one, or than its own:
        a copy read before another change still comes out newer); return it so numbered."""
        row = self.read_one("SELECT version FROM sessions WHERE id = ?", (session.id,))
        session = session.with_(version=max(session.version, row[0] if row else 0) + 1)
        self.write((
            f"INSERT OR REPLACE INTO sessions ({_SESSION_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session.id, session.user, session.uid, str(session.role), session.backend,
                str(session.state), session.logon_time, session.display, int(session.blocked),
                session.block_message, session.client, json.dumps(session.backend_data),
                json.dumps(session.logoff.__dict__) if session.logoff else None,
                session.block_undone, session.language, session.station, session.version,
                json.dumps(asdict(session.projection)) if session.projection else None,
                json.dumps(session.web_limit.as_dict()) if session.web_limit else None,
                session.hand_raised_at,
            ),
        ))
        return session

    def sessions(self) -> list[Session]:
        rows = self.read(f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY CAST(id AS INTEGER), id")
        return [_session(row) for row in rows]

    def session(self, session_id: str) -> Session | None:
        row = self.read_one(f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,))
        return _session(row) if row else None

    def end_session(self, session: Session, ended_by: str, reason: EndReason) -> EndedSession:
        """Move a session from the live table to the history, in one transaction."""
        ended = EndedSession(
            session.id, session.user, session.backend, session.display, session.logon_time,
            time.time(), ended_by, reason,
        )
        self.write(
            ("DELETE FROM sessions WHERE id = ?", (session.id,)),
            ("INSERT INTO ended_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
             (ended.id, ended.user, ended.backend, ended.display, ended.logon_time,
              ended.ended_at, ended.ended_by, str(ended.reason))),
        )
        return ended

    def ended_sessions(self, limit: int = 100) -> list[EndedSession]:
        rows = self.read("SELECT * FROM ended_sessions ORDER BY ended_at DESC LIMIT ?", (limit,))
        return [
            EndedSession(id=row[0], user=row[1], backend=row[2], display=row[3], logon_time=row[4],
                         ended_at=row[5], ended_by=row[6], reason=EndReason(row[7]))
            for row in rows
        ]

    def ended_counts(self, after_row: int = 0) -> tuple[int, list[tuple[str, int]]]:
        """Ended sessions recorded after row ``after_row``: (the newest row, counts by reason),
        for the metrics: pass the returned row next time to read only what is new."""
        newest_row = self.read_one("SELECT coalesce(max(rowid), 0) FROM ended_sessions")
        newest = newest_row[0] if newest_row else 0
        rows = self.read(
            "SELECT reason, count(*) FROM ended_sessions WHERE rowid > ? AND rowid <= ? GROUP BY reason",
            (after_row, newest))
        return int(newest), [(str(reason), int(n)) for reason, n in rows]

    # station connections: who was attached to which session, from where, when

    def record_connection(self, station: int, session_id: str, user: str, mode: str, client: str,
                          connected_at: float) -> None:
        self.write(("INSERT INTO connections VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (station, session_id, user, mode, client, connected_at)))

    def end_connection(self, station: int, session_id: str, disconnected_at: float) -> None:
        self.write(("UPDATE connections SET disconnected_at = ? WHERE station = ? AND session_id = ? "
                    "AND disconnected_at IS NULL", (disconnected_at, station, session_id)))

    def end_dangling_connections(self, at: float) -> None:
        """Connections a killed daemon never closed: they ended when it died, at the latest."""
        self.write(("UPDATE connections SET disconnected_at = ? WHERE disconnected_at IS NULL", (at,)))

    def connections(self, session_id: str) -> list[dict[str, Any]]:
        rows = self.read(
            "SELECT station, user, mode, client, connected_at, disconnected_at FROM connections "
            "WHERE session_id = ? ORDER BY connected_at", (session_id,))
        keys = ("station", "user", "mode", "client", "connected_at", "disconnected_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]


def _session(row: tuple[Any, ...]) -> Session:
    logoff = json.loads(row[12]) if row[12] else None
    return Session(
        id=row[0], user=row[1], uid=row[2], role=Role(row[3]), backend=row[4],
        state=SessionState(row[5]), logon_time=row[6], display=row[7], blocked=bool(row[8]),
        block_message=row[9], client=row[10], backend_data=json.loads(row[11]),
        logoff=LogoffPlan(**logoff) if logoff else None, block_undone=row[13], language=row[14],
        station=row[15], version=row[16],
        projection=Projection(**json.loads(row[17])) if row[17] else None, web_limit=stored_limit(row[18]),
        hand_raised_at=row[19],
    )
