"""Faults the daemon must survive without losing a session or an audit entry:
SIGTERM, a damaged or missing state database, a full state directory."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import Daemon
from tests.test_daemon import logon
from tests.users import TestUser, user_pids


def test_sigterm_stops_cleanly_and_sessions_keep_running(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana = make_user("ana")
    session = logon(daemon, ana)
    pids = set(user_pids(ana.uid))
    assert daemon.stop() == 0
    assert not daemon.socket.exists()
    assert pids <= set(user_pids(ana.uid))
    daemon.start()
    assert [s["id"] for s in daemon.sessions()] == [session["id"]]


def start_fails(daemon: Daemon, *args: str) -> str:
    with pytest.raises(RuntimeError) as failure:
        daemon.start(*args)
    return str(failure.value)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_damaged_database_is_named_and_recovered_on_request(
    daemon: Daemon, make_user: Callable[..., TestUser], damage: str
) -> None:
    users = [make_user(n) for n in ("ana", "bia")]
    ids = [str(logon(daemon, u)["id"]) for u in users]
    daemon.kill()
    database = daemon.state_dir / "polydesk.db"
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    if damage == "corrupt":
        database.write_bytes(b"\x13garbage that is not SQLite" * 512)
    else:
        database.unlink()

    message = start_fails(daemon)
    assert str(database) in message and "--recover" in message
    assert all(user_pids(u.uid) for u in users)  # refusing to start ended nothing

    daemon.start("--recover")
    listed = {s["id"]: s for s in daemon.sessions()}
    assert set(listed) == set(ids)
    assert {listed[i]["user"] for i in ids} == {u.name for u in users}
    if damage == "corrupt":
        assert list(daemon.state_dir.glob("polydesk.db.damaged-*"))  # kept for a post-mortem
    # still controllable, and new sessions never reuse a recovered id
    assert daemon.cli("logoff", ids[0], "--force").returncode == 0
    assert user_pids(users[0].uid) == []
    newcomer = logon(daemon, make_user("caio"))
    assert int(str(newcomer["id"])) > max(int(i) for i in ids)
    assert any(r["detail"].get("recover") for r in daemon.cli_json("audit"))


def test_full_state_directory_refuses_actions_and_loses_nothing(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory(start=False)
    daemon.state_dir.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0700", "tmpfs", str(daemon.state_dir)],
                   check=True)
    filler = daemon.state_dir / "filler"
    try:
        daemon.start()
        ana = make_user("ana")
        session_id = str(logon(daemon, ana)["id"])
        assert daemon.cli("msg", session_id, "before the disk fills").returncode == 0
        before = daemon.cli_json("audit")
        with open(filler, "wb") as fh, pytest.raises(OSError):
            for _ in range(100):  # bounded: 100 MiB is far more than the 8 MiB file system
                fh.write(b"\0" * (1 << 20))
                fh.flush()

        refused = daemon.cli("block", session_id)
        assert refused.returncode == 1
        assert "full" in refused.stderr and str(daemon.state_dir) in refused.stderr
        assert [s["blocked"] for s in daemon.sessions()] == [False]  # nothing half done
        assert user_pids(ana.uid)

        filler.unlink()
        assert daemon.cli("block", session_id).returncode == 0
        after = daemon.cli_json("audit")
        assert after[:len(before)] == before and after[-1]["action"] == "block"
        daemon.cli("logoff", "--all", "--force", "--yes")
        daemon.stop()
        with sqlite3.connect(f"file:{daemon.state_dir / 'polydesk.db'}?mode=ro", uri=True) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.cli("logoff", "--all", "--force", "--yes")
            daemon.stop()
        subprocess.run(["umount", str(daemon.state_dir)], check=False)
