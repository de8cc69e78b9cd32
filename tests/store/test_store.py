"""The SQLite store: what it keeps survives a reopen, the audit log only grows,
and a broken state directory is a clear StoreError."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from polydesk.core.events import AuditRecord
from polydesk.core.model import (
    EndReason,
    LogoffPlan,
    Projection,
    Role,
    Session,
    SessionState,
    StoreError,
)
from polydesk.store.schema import MIGRATIONS
from polydesk.store.space import RESERVE_BYTES, Priority, essential
from polydesk.store.store import Store


def a_session(session_id: str) -> Session:
    return Session(id=session_id, user="ana", uid=2001, role=Role.STANDARD, backend="xvnc",
                   state=SessionState.ACTIVE, logon_time=time.time(), display=":10",
                   backend_data={"xvnc_pid": 42})


def test_sessions_survive_reopen_with_their_logoff_plan(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db")
    first = store.new_session_id()
    plan = LogoffPlan("boss", 1.0, 31.0, False, "bye")
    projection = Projection("7", "bia", "teacher", 2.0)  # a projection outlives a restart too
    store.put_session(a_session(first).with_(state=SessionState.LOGGING_OFF, logoff=plan,
                                             projection=projection))
    store.close()
    again = Store(tmp_path / "p.db")
    (session,) = again.sessions()
    assert session.logoff == plan and session.backend_data == {"xvnc_pid": 42}
    assert session.projection == projection
    assert again.new_session_id() != first  # ids are never reused
    again.end_session(session, "boss", EndReason.LOGOFF)
    assert again.sessions() == []
    assert again.ended_sessions()[0].ended_by == "boss"


def test_audit_is_append_only(tmp_path: Path) -> None:
    store = Store(tmp_path / "p.db")
    seq = store.append_audit(AuditRecord(time.time(), "boss", 0, "admin", "cli", "logoff", ["1"], True,
                                         [{"id": "1", "status": "ended"}]))
    store.close()
    raw = sqlite3.connect(tmp_path / "p.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("DELETE FROM audit WHERE seq = ?", (seq,))
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        raw.execute("UPDATE audit SET caller = 'nobody'")
    raw.close()


def test_corrupt_database_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match=str(path)):
        Store(path)


def test_when_the_reserve_runs_low_only_what_takes_power_away_may_use_the_rest(tmp_path: Path) -> None:
    """The reserve, given back a chunk at a time: essential records get all of it, every
    other write (a message, a station's record, the block guard's count) its upper half."""
    fs = tmp_path / "fs"
    fs.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(fs)], check=True)
    store = None
    try:
        store = Store(fs / "polydesk.db")
        # Unbuffered: a buffered file would raise again on close, flushing what did not fit.
        with open(fs / "filler", "wb", buffering=0) as fh, pytest.raises(OSError):
            for _ in range(100):
                fh.write(b"\0" * (64 << 10))
                fh.flush()
        with pytest.raises(StoreError, match="full"):
            store.ensure_space(Priority.NORMAL)
        store.ensure_space(Priority.SMALL)
        record = AuditRecord(time=0, caller="teacher", caller_uid=1, role="dashboard", via="cli",
                             action="block", targets=["1"], allowed=True, results=[],
                             detail={"message": "x" * 500})
        small = essentials = 0
        with pytest.raises(StoreError, match="full"):
            while True:  # as a student reconnecting a station in a loop would
                store.append_audit(record)
                small += 1
        assert store.reserve_left() == RESERVE_BYTES // 2
        with pytest.raises(StoreError, match="reserve left"):
            store.ensure_space(Priority.SMALL)
        store.ensure_space(Priority.ESSENTIAL)
        with essential(), pytest.raises(StoreError, match="full"):
            while True:
                store.append_audit(record)
                essentials += 1
        assert store.reserve_left() == 0
        print(f"{small} records from the upper half, {essentials} essential ones from the lower")
        assert essentials > 400  # a class of 30 blocked, disconnected and logged off, several times
        assert len(store.audit(limit=10_000)) == small + essentials
    finally:
        if store is not None:
            store.close()
        subprocess.run(["umount", str(fs)], check=False)


def test_signins_and_failed_signins_survive_reopen_and_an_older_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "polydesk.db"
    old = sqlite3.connect(path)  # a database from before these tables (three migrations)
    for number, script in enumerate(MIGRATIONS[:3], start=1):
        old.executescript(f"BEGIN; {script}; PRAGMA user_version={number}; COMMIT;")
    old.close()
    store = Store(path)
    store.add_signin("sid-live", "ana", time.time() + 60)
    store.add_signin("sid-old", "bia", time.time() - 1)  # ended: never read back
    store.add_signin("sid-out", "caio", time.time() + 60)
    store.drop_signin("sid-out")
    store.put_signin_failures([("pair\0ana\0addr:10.0.0.1", 4, 123.0), ("*", 9, 100.0)], drop=[])
    store.put_signin_failures([], drop=["*"])
    store.close()
    again = Store(path)
    assert [(sid, user) for sid, user, _ in again.signins()] == [("sid-live", "ana")]
    assert again.signin_failures() == [("pair\0ana\0addr:10.0.0.1", 4, 123.0)]
    again.close()
