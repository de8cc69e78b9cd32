"""Faults the daemon must survive without losing a session or an audit entry:
SIGTERM, a damaged or missing state database, a full state directory."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness import Daemon
from tests.test_daemon import logon
from tests.users import TestUser, settled_pids, user_pids


def test_sigterm_stops_cleanly_and_sessions_keep_running(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana = make_user("ana")
    session = logon(daemon, ana)
    pids = settled_pids(ana.uid)
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


def test_a_student_who_fills_the_disk_cannot_stop_the_teacher(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    """Issue 13, point 8. The state directory shares its file system with a world-writable
    directory (as /var/lib does with /var/tmp on many machines); a student fills it. Block,
    log-off and disconnect must still work and be audited (the store's reserve pays for their
    records); message and unblock too, being tiny; a new logon waits for space."""
    daemon = daemon_factory(start=False)
    shared = daemon.state_dir.parent / "var"  # the file system: a few MiB, like a full /var
    shared.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=1777", "tmpfs", str(shared)], check=True)
    mounted = [shared]
    try:
        (shared / "lib-polydesk").mkdir(mode=0o700)
        daemon.state_dir.mkdir()
        subprocess.run(["mount", "--bind", str(shared / "lib-polydesk"), str(daemon.state_dir)], check=True)
        mounted.insert(0, daemon.state_dir)
        daemon.start()
        student, other = make_user("ana"), make_user("bia")
        teacher = make_user("teacher", "dashboard")
        session_id = str(logon(daemon, student)["id"])
        before = daemon.cli_json("audit")

        # The student fills it, as themself, in the directory anyone may write to.
        filled = subprocess.run(["dd", "if=/dev/zero", f"of={shared}/junk", "bs=1M", "count=100"],
                                user=student.uid, group=student.gid, capture_output=True, text=True,
                                timeout=60, check=False)
        assert filled.returncode != 0 and "No space left" in filled.stderr
        assert os.statvfs(shared).f_bavail == 0

        for args in (["block", session_id, "--message", "Eyes on me"], ["msg", session_id, "Stop"],
                     ["unblock", session_id], ["block", session_id], ["disconnect", session_id],
                     ["logoff", session_id, "--force"]):
            done = daemon.cli(*args, user=teacher)
            assert done.returncode == 0, (args, done.stdout, done.stderr)
            if args[0] == "disconnect":
                assert [(s["state"], s["blocked"]) for s in daemon.sessions()] == [("disconnected", True)]
        assert user_pids(student.uid) == [] and daemon.sessions() == []
        refused = daemon.cli("logon", other.name)  # starting something new waits for space
        assert refused.returncode == 1 and "full" in refused.stderr
        assert str(daemon.state_dir) in refused.stderr
        assert user_pids(other.uid) == []

        after = daemon.cli_json("audit")
        assert after[:len(before)] == before
        by_teacher = [(r["action"], r["allowed"], r["results"][0]["status"])
                      for r in after[len(before):]
                      if r["caller"] == teacher.name and not r["detail"].get("what_if")]
        assert by_teacher == [("block", True, "blocked"), ("message", True, "shown"),
                              ("unblock", True, "unblocked"), ("block", True, "blocked"),
                              ("disconnect", True, "disconnected"), ("logoff", True, "ended")]

        (shared / "junk").unlink()  # space again: all as before, the reserve made up
        assert logon(daemon, other)["user"] == other.name
        assert (daemon.state_dir / "space.reserve").stat().st_size == 1 << 20
        daemon.cli("logoff", "--all", "--force", "--yes")
        daemon.stop()
        with sqlite3.connect(f"file:{daemon.state_dir / 'polydesk.db'}?mode=ro", uri=True) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        (shared / "junk").unlink(missing_ok=True)  # so that the sessions can be logged off in any case
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.cli("logoff", "--all", "--force", "--yes")
            daemon.stop()
        for point in mounted:
            subprocess.run(["umount", str(point)], check=False)

