"""Issue 2's acceptance, end to end: a real daemon, real Xvnc sessions of real
users, driven by the real CLI as those users would run it."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.harness import Daemon, wait_for
from tests.rfb import RfbClient
from tests.users import TestUser, display_files, settled_pids, user_pids

ESCAPERS = """#!/bin/sh
# A desktop with processes that try to outlive a log-off.
setsid sh -c 'setsid sleep 1000 & exit' &
sh -c 'trap "" TERM; while :; do sleep 1; done' &
openbox &
exec xterm
"""


def logon(daemon: Daemon, user: TestUser) -> dict[str, object]:
    result = daemon.cli("logon", user.name, "--json")
    assert result.returncode == 0, result.stderr + daemon.log.read_text()
    session: dict[str, object] = json.loads(result.stdout)["session"]
    return session


def plant_xsession(user: TestUser, script: str = ESCAPERS) -> None:
    path = Path(user.home) / ".xsession"
    path.write_text(script)
    os.chown(path, user.uid, user.gid)
    path.chmod(0o755)


def display_left(display: str, user: TestUser) -> list[str]:
    return display_files(display.lstrip(":"), user.uid)


def test_logoff_two_selected_of_three(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    users = [make_user(n) for n in ("ana", "bia", "caio")]
    for user in users[:2]:
        plant_xsession(user)
    sessions = [logon(daemon, u) for u in users]
    wait_for(lambda: all(len(user_pids(u.uid)) >= 3 for u in users))
    third_pids = settled_pids(users[2].uid)
    runtime = [daemon.runtime_dir / "sessions" / str(s["id"]) for s in sessions]

    result = daemon.cli("logoff", str(sessions[0]["id"]), str(sessions[1]["id"]), "--force", "--yes")

    assert result.returncode == 0, result.stderr
    assert [s["id"] for s in daemon.sessions()] == [sessions[2]["id"]]
    for user, session, rundir in zip(users[:2], sessions[:2], runtime[:2], strict=True):
        assert user_pids(user.uid) == [], "a process of the ended session survived (escapers included)"
        assert display_left(str(session["display"]), user) == []
        assert not rundir.exists()
    assert third_pids <= set(user_pids(users[2].uid))  # the third is untouched
    assert display_left(str(sessions[2]["display"]), users[2]) != []
    ended = daemon.cli_json("audit")[-1]
    assert ended["action"] == "logoff" and sorted(ended["targets"]) == sorted(
        [sessions[0]["id"], sessions[1]["id"]])


def test_graceful_logoff_warns_then_closes(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    session = logon(daemon, ana)
    started = time.monotonic()
    result = daemon.cli("logoff", str(session["id"]), "--grace", "2")
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started >= 2  # the warning's countdown was given
    assert daemon.sessions() == [] and user_pids(ana.uid) == []


def test_logoff_all_spares_the_caller(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    boss = make_user("boss", role="admin")
    others = [make_user(n) for n in ("ana", "bia")]
    mine = logon(daemon, boss)
    for user in others:
        logon(daemon, user)
    result = daemon.cli("logoff", "--all", "--force", "--yes", user=boss)
    assert result.returncode == 0, result.stderr
    assert [s["id"] for s in daemon.sessions()] == [mine["id"]]
    assert all(user_pids(u.uid) == [] for u in others)
    assert user_pids(boss.uid) != []


def test_standard_user_cannot_touch_another_session(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    logon(daemon, ana)
    theirs = logon(daemon, bia)
    pids = settled_pids(bia.uid)
    for action in ("logoff", "disconnect", "block"):
        result = daemon.cli(action, str(theirs["id"]), "--yes" if action == "logoff" else "--json",
                            user=ana)
        assert result.returncode == 3, (action, result.stdout, result.stderr)
    assert pids <= set(user_pids(bia.uid))
    assert [s["blocked"] for s in daemon.sessions() if s["id"] == theirs["id"]] == [False]
    refusals = [r for r in daemon.cli_json("audit") if not r["allowed"]]
    assert {r["action"] for r in refusals} >= {"logoff", "disconnect", "block"}


def test_disconnect_then_logon_resumes(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    session = logon(daemon, ana)
    pids = settled_pids(ana.uid)
    assert daemon.cli("disconnect", user=ana).returncode == 0
    assert daemon.sessions()[0]["state"] == "disconnected"
    again = logon(daemon, ana)
    assert (again["id"], again["display"]) == (session["id"], session["display"])
    assert again["state"] == "active"
    assert pids <= set(user_pids(ana.uid))


def test_daemon_killed_and_restarted_readopts(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    users = [make_user(n) for n in ("ana", "bia", "caio")]
    sessions = [logon(daemon, u) for u in users]
    daemon.cli("block", str(sessions[0]["id"]))
    pids = {u.name: settled_pids(u.uid) for u in users}
    daemon.kill()
    assert all(pids[u.name] <= set(user_pids(u.uid)) for u in users)  # sessions outlive the daemon
    daemon.start()
    listed = {s["id"]: s for s in daemon.sessions()}
    assert set(listed) == {s["id"] for s in sessions}
    assert listed[sessions[0]["id"]]["blocked"] is True
    # still controllable: unblock and log off through the new daemon
    assert daemon.cli("unblock", str(sessions[0]["id"])).returncode == 0
    assert daemon.cli("logoff", str(sessions[1]["id"]), "--force").returncode == 0
    assert user_pids(users[1].uid) == []
    assert {s["id"] for s in daemon.sessions()} == {sessions[0]["id"], sessions[2]["id"]}


def test_crashed_session_is_recorded_and_cleaned(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    session = logon(daemon, ana)
    xvnc = [p for p in user_pids(ana.uid) if Path(f"/proc/{p}/comm").read_text().strip() == "Xvnc"]
    assert len(xvnc) == 1
    os.kill(xvnc[0], 9)
    wait_for(lambda: daemon.sessions() == [], timeout=5)
    wait_for(lambda: user_pids(ana.uid) == [], timeout=5)
    assert display_left(str(session["display"]), ana) == []
    last = daemon.cli_json("audit")[-1]
    assert last["caller"] == "polydesk" and last["detail"].get("crashed") is True


TYPING_DESKTOP = """#!/bin/sh
# One xterm running a shell, focused by the window manager: what is typed lands in it.
exec openbox --startup 'xterm -e sh'
"""


def test_block_ignores_rfb_input_until_unblock(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    plant_xsession(ana, TYPING_DESKTOP)
    session = logon(daemon, ana)
    client = RfbClient(str(daemon.runtime_dir / "sessions" / str(session["id"]) / "vnc" / "rfb.sock"))
    try:
        marks = [Path(ana.home) / name for name in ("before-block", "while-blocked", "after-unblock")]
        before_mark, blocked_mark, unblocked_mark = marks
        wait_for(lambda: len(user_pids(ana.uid)) >= 4)  # Xvnc, openbox, xterm, sh
        time.sleep(0.5)
        client.type(f"touch {before_mark}\n")
        wait_for(lambda: before_mark.exists(), timeout=5, what="typing to reach the shell at all")
        assert daemon.cli("block", str(session["id"]), "--message", "Eyes on the board").returncode == 0
        client.type(f"touch {blocked_mark}\n")
        client.key(0xFFE9)  # Alt_L down/up, then Alt+F4 style escape attempts
        client.type("\t")
        time.sleep(1.5)
        assert not blocked_mark.exists(), "a key typed while blocked reached the session"
        assert daemon.cli("unblock", str(session["id"])).returncode == 0
        client.type(f"\x08\x08\x08touch {unblocked_mark}\n")
        wait_for(lambda: unblocked_mark.exists(), timeout=5, what="the keys typed after unblock")
        assert not blocked_mark.exists()
    finally:
        client.close()
    actions = [r["action"] for r in daemon.cli_json("audit")]
    assert actions[-2:] == ["block", "unblock"]


def test_leaving_the_desktop_ends_the_session(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    plant_xsession(ana, "#!/bin/sh\nsleep 1\n")  # the desktop ends by itself: a logout
    session = logon(daemon, ana)
    wait_for(lambda: daemon.sessions() == [], timeout=8)
    wait_for(lambda: user_pids(ana.uid) == [], timeout=5)
    assert display_left(str(session["display"]), ana) == []
    last = daemon.cli_json("audit")[-1]
    assert last["targets"] == [session["id"]] and last["detail"]["reason"] == "logout"


def test_logoff_interrupted_by_a_daemon_crash_is_finished(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    users = [make_user(n) for n in ("ana", "bia")]
    ids = [str(logon(daemon, u)["id"]) for u in users]
    started = daemon.cli("logoff", *ids, "--grace", "3", "--no-wait", "--yes")
    assert started.returncode == 0 and started.stdout.count("logging-off") == 2
    daemon.kill()  # in the middle of the grace period
    daemon.start()
    assert {s["state"] for s in daemon.sessions()} <= {"logging-off"}
    wait_for(lambda: daemon.sessions() == [], timeout=15)
    assert all(user_pids(u.uid) == [] for u in users)
    recovered = [r for r in daemon.cli_json("audit") if r["detail"].get("recovered")]
    assert sorted(r["targets"][0] for r in recovered) == sorted(ids)
