"""The state database's tables, as the list of migrations that made them.

A database records how many of ``MIGRATIONS`` it has had (``PRAGMA user_version``); opening
it runs the rest, each in its own transaction. Migrations are only ever appended. The audit
table is append-only: triggers refuse UPDATE and DELETE on it, whoever asks.
"""

from __future__ import annotations

import sqlite3

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
    # and failed log-on counters (a restart must not forgive a guesser): web/auth.py, web/signin.py.
    """
    CREATE TABLE signins (sid TEXT PRIMARY KEY, user TEXT NOT NULL, expires REAL NOT NULL);
    CREATE TABLE logon_failures (key TEXT PRIMARY KEY, failures INTEGER NOT NULL, last REAL NOT NULL);
    """,
    # The language a session's station asked for (i18n.session_language): kept across restarts.
    """
    ALTER TABLE sessions ADD COLUMN language TEXT;
    """,
    # Which version of the monitoring notice each user dismissed (web/routes/privacy.py).
    """
    CREATE TABLE notices_seen (user TEXT PRIMARY KEY, version TEXT NOT NULL, seen REAL NOT NULL);
    """,
    # Named stations (a browser gets one on first use; nonce: what its signed cookie must name),
    # the session's station, teachers' groups of students (shared) and card orders (per teacher):
    # manager/station_book.py, manager/groups.py.
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
    # Whose screen a projection target's station shows (manager/projection.py): kept across restarts.
    """
    ALTER TABLE sessions ADD COLUMN projection TEXT;
    """,
    # Web limits: a session's (JSON: mode, sites; kept across restarts as a block is) and the
    # saved lists of sites, shared by the Dashboard users (manager/weblimits.py).
    """
    ALTER TABLE sessions ADD COLUMN web_limit TEXT;
    CREATE TABLE web_lists (
        name TEXT PRIMARY KEY, mode TEXT NOT NULL, sites TEXT NOT NULL, updated REAL NOT NULL,
        updated_by TEXT NOT NULL
    );
    """,
    # Chat (manager/chat.py): a conversation per session, what each reader has read of it, and
    # a session's raised hand (kept across restarts as a block is).
    """
    CREATE TABLE chat (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT NOT NULL, time REAL NOT NULL,
        sender TEXT NOT NULL, student INTEGER NOT NULL, text TEXT NOT NULL
    );
    CREATE INDEX chat_session ON chat (session_id, seq);
    CREATE INDEX chat_time ON chat (time);
    CREATE TABLE chat_read (
        session_id TEXT NOT NULL, reader TEXT NOT NULL, seq INTEGER NOT NULL,
        PRIMARY KEY (session_id, reader)
    );
    ALTER TABLE sessions ADD COLUMN hand_raised_at REAL;
    """,
]


def migrate(db: sqlite3.Connection) -> None:
    """Bring ``db`` to the newest schema."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        db.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
