"""SQLite state: live sessions, ended-session history, the audit log.

One connection, one writer (the daemon). Every write is its own transaction,
so a daemon killed at any point leaves the database consistent. Errors from
sqlite3 are translated into StoreError at this boundary.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from polydesk.core.events import AuditRecord
from polydesk.core.model import (
    EndedSession,
    EndReason,
    LogoffPlan,
    Role,
    Session,
    SessionState,
    StoreError,
)

MIGRATIONS: list[str] = [
    """
    CREATE TABLE session_ids (id INTEGER PRIMARY KEY AUTOINCREMENT);
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY, user TEXT NOT NULL, uid INTEGER NOT NULL, role TEXT NOT NULL,
        host TEXT NOT NULL, state TEXT NOT NULL, logon_time REAL NOT NULL, display TEXT,
        blocked INTEGER NOT NULL DEFAULT 0, block_message TEXT, client TEXT,
        host_data TEXT NOT NULL DEFAULT '{}', logoff TEXT
    );
    CREATE TABLE ended_sessions (
        id TEXT NOT NULL, user TEXT NOT NULL, host TEXT NOT NULL, display TEXT,
        logon_time REAL NOT NULL, ended_at REAL NOT NULL, ended_by TEXT NOT NULL, reason TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, caller TEXT NOT NULL,
        caller_uid INTEGER NOT NULL, role TEXT NOT NULL, via TEXT NOT NULL, action TEXT NOT NULL,
        targets TEXT NOT NULL, allowed INTEGER NOT NULL, results TEXT NOT NULL, detail TEXT NOT NULL
    );
    CREATE TRIGGER audit_append_only_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_append_only_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, user TEXT NOT NULL,
        created REAL NOT NULL, created_by TEXT NOT NULL, note TEXT NOT NULL DEFAULT ''
    );
    """,
    """
    CREATE TABLE connections (
        station INTEGER NOT NULL, session_id TEXT NOT NULL, user TEXT NOT NULL, mode TEXT NOT NULL,
        client TEXT NOT NULL, connected_at REAL NOT NULL, disconnected_at REAL
    );
    CREATE INDEX connections_session ON connections (session_id);
    """,
    """
    ALTER TABLE sessions ADD COLUMN block_undone INTEGER NOT NULL DEFAULT 0;
    """,
    # Web sign-ins (a cookie works only while its id is here: signing out survives a restart)
    # and failed log-on counters (a restart must not forgive a guesser): web/auth.py, web/logon.py.
    """
    CREATE TABLE signins (sid TEXT PRIMARY KEY, user TEXT NOT NULL, expires REAL NOT NULL);
    CREATE TABLE logon_failures (key TEXT PRIMARY KEY, failures INTEGER NOT NULL, last REAL NOT NULL);
    """,
    # The language a session's station asked for (i18n.session_language): kept across restarts.
    """
    ALTER TABLE sessions ADD COLUMN language TEXT;
    """,
    # Which version of the monitoring notice each user dismissed (web/privacy.py).
    """
    CREATE TABLE notices_seen (user TEXT PRIMARY KEY, version TEXT NOT NULL, seen REAL NOT NULL);
    """,
    # Named stations (a browser gets one on first use; nonce: what its signed cookie must name),
    # the session's station, teachers' groups of students (shared) and card orders (per teacher):
    # station_book.py, groups.py.
    """
    CREATE TABLE stations (
        id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, nonce TEXT NOT NULL,
        created REAL NOT NULL, last_used REAL, last_user TEXT, session_id TEXT
    );
    ALTER TABLE sessions ADD COLUMN station TEXT;
    CREATE TABLE student_groups (
        name TEXT PRIMARY KEY, members TEXT NOT NULL, updated REAL NOT NULL, updated_by TEXT NOT NULL
    );
    CREATE TABLE card_orders (owner TEXT PRIMARY KEY, users TEXT NOT NULL);
    """,
    # A version per session, one more on every change: Dashboards order a card's updates by it.
    """
    ALTER TABLE sessions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    """,
]

# Space kept back in the state directory (a file of zeros, root's) for when the file system
# is full: given back a chunk at a time to the write that needs it, so the actions that take
# power away from users (block, log-off, disconnect) are still carried out and recorded when
# a student has filled the disk, and so is the record of an action already under way.
RESERVE_BYTES = 1 << 20
RESERVE_CHUNK = 64 << 10  # one chunk holds a few transactions (each a handful of 4 KiB pages)
MIN_FREE_BYTES = 2 << 20
RESERVE_FILE = "space.reserve"


class Priority(enum.IntEnum):
    """How much of the reserve an action may count on when the state directory is full."""

    NORMAL = 0  # none: refused (logon, tokens), they can wait until space is freed
    SMALL = 1  # its upper half: a tiny record (message, unblock), and every write by default
    ESSENTIAL = 2  # all of it: actions that take power away from users (block, log-off, disconnect)


# Writes made within ``essential()`` (and the tasks it starts) may spend the whole reserve;
# any other write stops at its upper half. So nothing a user can repeat at will (reconnecting
# a station, killing a block's cover) can spend what block, log-off and disconnect need.
_ESSENTIAL: contextvars.ContextVar[bool] = contextvars.ContextVar("polydesk_essential", default=False)


@contextlib.contextmanager
def essential() -> Iterator[None]:
    token = _ESSENTIAL.set(True)
    try:
        yield
    finally:
        _ESSENTIAL.reset(token)

_SESSION_COLUMNS = (
    "id, user, uid, role, host, state, logon_time, display, blocked, block_message, client, "
    "host_data, logoff, block_undone, language, station, version"
)


@contextlib.contextmanager
def _translated(path: Path) -> Iterator[None]:
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"state database {path}: {exc}") from exc
    except OSError as exc:
        raise StoreError(f"state directory {path.parent}: {exc.strerror or exc}") from exc


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        with _translated(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            # A short WAL, checkpointed often and then written over from its start, needs no
            # new blocks once it has its size: on a full disk the reserve pays only for rows.
            self._db.execute("PRAGMA wal_autocheckpoint=64")
            self._migrate()
            verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise StoreError(f"state database {path} is damaged: {verdict}")
        self._reserve = path.parent / RESERVE_FILE
        self._make_reserve()

    def _make_reserve(self) -> None:
        """Fill the reserve up to its size again (after it was given back, once space is freed)."""
        try:
            with open(self._reserve, "ab") as fh:
                missing = RESERVE_BYTES - fh.tell()
                if missing > 0:  # written out, not sparse: the blocks are ours
                    fh.write(b"\0" * missing)
        except OSError:  # no room for all of it now: what was written counts; the next
            pass  # ensure_space with room fills up the rest

    def reserve_left(self) -> int:
        try:
            return min(self._reserve.stat().st_size, RESERVE_BYTES)
        except FileNotFoundError:
            return 0

    def ensure_space(self, priority: Priority = Priority.NORMAL) -> None:
        """Refuse, before anything is done, when the state directory is (nearly) full, unless
        ``priority`` may count on the reserve (see Priority)."""
        try:
            fs = os.statvfs(self.path.parent)
        except OSError as exc:
            raise StoreError(f"state directory {self.path.parent}: {exc.strerror}") from exc
        free = fs.f_bavail * fs.f_frsize
        if free >= MIN_FREE_BYTES:
            self._make_reserve()
            return
        left = self.reserve_left()
        if priority == Priority.ESSENTIAL or (priority == Priority.SMALL and left > RESERVE_BYTES // 2):
            return
        state = "full" if free < RESERVE_CHUNK else "nearly full"
        raise StoreError(f"state directory {self.path.parent} is {state} ({free // 1024} KiB free, "
                         f"{left // 1024} KiB of reserve left): this action is refused until space is "
                         "freed; block, log-off and disconnect still work")

    def close(self) -> None:
        self._db.close()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")

    def _write(self, *statements: tuple[str, tuple[Any, ...]]) -> sqlite3.Cursor:
        """Run ``statements`` in one transaction; return the last cursor."""
        with _translated(self.path):
            while True:
                try:
                    return self._attempt(statements)
                except sqlite3.OperationalError as exc:
                    left = self.reserve_left()
                    floor = 0 if _ESSENTIAL.get() else RESERVE_BYTES // 2
                    if "full" not in str(exc) or left <= floor:
                        raise
                    # The file system is full: give back a chunk of the reserve and try again.
                    os.truncate(self._reserve, max(floor, left - RESERVE_CHUNK))

    def _attempt(self, statements: tuple[tuple[str, tuple[Any, ...]], ...]) -> sqlite3.Cursor:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in statements:
                cursor = self._db.execute(sql, params)
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return cursor

    # for the small stores beside this one (station_book.py, groups.py): their SQL, this connection

    def write(self, *statements: tuple[str, tuple[Any, ...]]) -> sqlite3.Cursor:
        """Run ``statements`` in one transaction (StoreError when it cannot be saved)."""
        return self._write(*statements)

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with _translated(self.path):
            return list(self._db.execute(sql, params).fetchall())

    # sessions

    def new_session_id(self) -> str:
        cursor = self._write(("INSERT INTO session_ids DEFAULT VALUES", ()))
        return str(cursor.lastrowid)

    def reserve_ids(self, up_to: int) -> None:
        """Never hand out ids up to ``up_to`` again (sessions recovered with their old ids)."""
        self._write(("INSERT OR IGNORE INTO session_ids (id) VALUES (?)", (up_to,)))

    def put_session(self, session: Session) -> Session:
        """Store ``session`` as its next version (one more than the stored one, or than its own:
        a copy read before another change still comes out newer); return it so numbered."""
        with _translated(self.path):
            row = self._db.execute("SELECT version FROM sessions WHERE id = ?", (session.id,)).fetchone()
        session = session.with_(version=max(session.version, row[0] if row else 0) + 1)
        self._write((
            f"INSERT OR REPLACE INTO sessions ({_SESSION_COLUMNS}) VALUES "
            "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                session.id, session.user, session.uid, str(session.role), session.backend,
                str(session.state), session.logon_time, session.display, int(session.blocked),
                session.block_message, session.client, json.dumps(session.backend_data),
                json.dumps(session.logoff.__dict__) if session.logoff else None,
                session.block_undone, session.language, session.station, session.version,
            ),
        ))
        return session

    def sessions(self) -> list[Session]:
        with _translated(self.path):
            rows = self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions ORDER BY CAST(id AS INTEGER), id"
            ).fetchall()
        return [_session(row) for row in rows]

    def session(self, session_id: str) -> Session | None:
        with _translated(self.path):
            row = self._db.execute(
                f"SELECT {_SESSION_COLUMNS} FROM sessions WHERE id = ?", (session_id,)
            ).fetchone()
        return _session(row) if row else None

    def end_session(self, session: Session, ended_by: str, reason: EndReason) -> EndedSession:
        """Move a session from the live table to the history, in one transaction."""
        ended = EndedSession(
            session.id, session.user, session.backend, session.display, session.logon_time,
            time.time(), ended_by, reason,
        )
        self._write(
            ("DELETE FROM sessions WHERE id = ?", (session.id,)),
            ("INSERT INTO ended_sessions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
             (ended.id, ended.user, ended.backend, ended.display, ended.logon_time,
              ended.ended_at, ended.ended_by, str(ended.reason))),
        )
        return ended

    def ended_sessions(self, limit: int = 100) -> list[EndedSession]:
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT * FROM ended_sessions ORDER BY ended_at DESC LIMIT ?", (limit,)
            ).fetchall()
        return [
            EndedSession(id=row[0], user=row[1], backend=row[2], display=row[3], logon_time=row[4],
                         ended_at=row[5], ended_by=row[6], reason=EndReason(row[7]))
            for row in rows
        ]

    # audit

    def append_audit(self, record: AuditRecord) -> int:
        cursor = self._write((
            "INSERT INTO audit (time, caller, caller_uid, role, via, action, targets, allowed, "
            "results, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (record.time, record.caller, record.caller_uid, record.role, record.via,
             record.action, json.dumps(record.targets), int(record.allowed),
             json.dumps(record.results), json.dumps(record.detail)),
        ))
        return int(cursor.lastrowid or 0)

    def audit(self, limit: int = 100, since_seq: int = 0) -> list[AuditRecord]:
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT seq, time, caller, caller_uid, role, via, action, targets, allowed, "
                "results, detail FROM audit WHERE seq > ? ORDER BY seq DESC LIMIT ?",
                (since_seq, limit),
            ).fetchall()
        return [
            AuditRecord(
                seq=row[0], time=row[1], caller=row[2], caller_uid=row[3], role=row[4], via=row[5],
                action=row[6], targets=json.loads(row[7]), allowed=bool(row[8]),
                results=json.loads(row[9]), detail=json.loads(row[10]),
            )
            for row in reversed(rows)
        ]

    # counts for the metrics (metrics.py): totals since the database began, read incrementally

    def audit_counts(
        self, after_seq: int = 0
    ) -> tuple[int, list[tuple[str, bool, int]], list[tuple[str, int]]]:
        """Audit records after ``after_seq``: (the newest seq, entries by (action, allowed),
        logon results by status). Pass the returned seq next time to read only what is new."""
        with _translated(self.path):
            newest = self._db.execute("SELECT coalesce(max(seq), 0) FROM audit").fetchone()[0]
            entries = self._db.execute(
                "SELECT action, allowed, count(*) FROM audit WHERE seq > ? AND seq <= ? "
                "GROUP BY action, allowed", (after_seq, newest)).fetchall()
            logons = self._db.execute(
                "SELECT json_extract(r.value, '$.status'), count(*) FROM audit, json_each(audit.results) r "
                "WHERE seq > ? AND seq <= ? AND action = 'logon' GROUP BY 1", (after_seq, newest)).fetchall()
        return (int(newest), [(str(a), bool(ok), int(n)) for a, ok, n in entries],
                [(str(status), int(n)) for status, n in logons])

    def ended_counts(self, after_row: int = 0) -> tuple[int, list[tuple[str, int]]]:
        """Ended sessions recorded after row ``after_row``: (the newest row, counts by reason)."""
        with _translated(self.path):
            newest = self._db.execute("SELECT coalesce(max(rowid), 0) FROM ended_sessions").fetchone()[0]
            rows = self._db.execute(
                "SELECT reason, count(*) FROM ended_sessions WHERE rowid > ? AND rowid <= ? GROUP BY reason",
                (after_row, newest)).fetchall()
        return int(newest), [(str(reason), int(n)) for reason, n in rows]

    # station connections: who was attached to which session, from where, when

    def record_connection(self, station: int, session_id: str, user: str, mode: str, client: str,
                          connected_at: float) -> None:
        self._write(("INSERT INTO connections VALUES (?, ?, ?, ?, ?, ?, NULL)",
                     (station, session_id, user, mode, client, connected_at)))

    def end_connection(self, station: int, session_id: str, disconnected_at: float) -> None:
        self._write(("UPDATE connections SET disconnected_at = ? WHERE station = ? AND session_id = ? "
                     "AND disconnected_at IS NULL", (disconnected_at, station, session_id)))

    def end_dangling_connections(self, at: float) -> None:
        """Connections a killed daemon never closed: they ended when it died, at the latest."""
        self._write(("UPDATE connections SET disconnected_at = ? WHERE disconnected_at IS NULL", (at,)))

    def connections(self, session_id: str) -> list[dict[str, Any]]:
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT station, user, mode, client, connected_at, disconnected_at FROM connections "
                "WHERE session_id = ? ORDER BY connected_at", (session_id,)).fetchall()
        keys = ("station", "user", "mode", "client", "connected_at", "disconnected_at")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    # tokens (stored as digests only)

    def add_token(self, token_id: str, digest: str, user: str, created_by: str, note: str) -> None:
        self._write(("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?)",
                     (token_id, digest, user, time.time(), created_by, note)))

    def token_user(self, digest: str) -> str | None:
        with _translated(self.path):
            row = self._db.execute("SELECT user FROM tokens WHERE digest = ?", (digest,)).fetchone()
        return str(row[0]) if row else None

    def tokens(self) -> list[dict[str, Any]]:
        with _translated(self.path):
            rows = self._db.execute(
                "SELECT id, user, created, created_by, note FROM tokens ORDER BY created"
            ).fetchall()
        keys = ("id", "user", "created", "created_by", "note")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def revoke_token(self, token_id: str) -> bool:
        cursor = self._write(("DELETE FROM tokens WHERE id = ?", (token_id,)))
        return cursor.rowcount > 0


    # web sign-ins and failed log-ons

    def add_signin(self, sid: str, user: str, expires: float) -> None:
        self._write(("DELETE FROM signins WHERE expires < ?", (time.time(),)),
                    ("INSERT OR REPLACE INTO signins VALUES (?, ?, ?)", (sid, user, expires)))

    def drop_signin(self, sid: str) -> None:
        self._write(("DELETE FROM signins WHERE sid = ?", (sid,)))

    def signins(self) -> list[tuple[str, str, float]]:
        with _translated(self.path):
            rows = self._db.execute("SELECT sid, user, expires FROM signins WHERE expires >= ?",
                                    (time.time(),)).fetchall()
        return [(str(sid), str(user), float(expires)) for sid, user, expires in rows]

    # Web sign-in failures (web/signin.py); the table keeps its first name: databases in use have it.
    def put_signin_failures(self, rows: list[tuple[str, int, float]], drop: list[str]) -> None:
        if rows or drop:
            self._write(*(("INSERT OR REPLACE INTO logon_failures VALUES (?, ?, ?)", row) for row in rows),
                        *(("DELETE FROM logon_failures WHERE key = ?", (key,)) for key in drop))

    def signin_failures(self) -> list[tuple[str, int, float]]:
        with _translated(self.path):
            rows = self._db.execute("SELECT key, failures, last FROM logon_failures").fetchall()
        return [(str(key), int(failures), float(last)) for key, failures, last in rows]


    def set_notice_seen(self, user: str, version: str) -> None:
        self._write(("INSERT OR REPLACE INTO notices_seen VALUES (?, ?, ?)", (user, version, time.time())))

    def notice_seen(self, user: str) -> str | None:
        with _translated(self.path):
            row = self._db.execute("SELECT version FROM notices_seen WHERE user = ?", (user,)).fetchone()
        return str(row[0]) if row else None


def _session(row: tuple[Any, ...]) -> Session:
    logoff = json.loads(row[12]) if row[12] else None
    return Session(
        id=row[0], user=row[1], uid=row[2], role=Role(row[3]), backend=row[4],
        state=SessionState(row[5]), logon_time=row[6], display=row[7], blocked=bool(row[8]),
        block_message=row[9], client=row[10], backend_data=json.loads(row[11]),
        logoff=LogoffPlan(**logoff) if logoff else None, block_undone=row[13], language=row[14],
        station=row[15], version=row[16],
    )
