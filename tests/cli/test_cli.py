"""The CLI against a real daemon over its Unix socket, run as real users.

These use the daemon's in-memory backend (fake) for speed; tests/test_daemon.py repeats
what matters on real Xvnc sessions.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.harness import Daemon
from tests.users import TestUser


def logon(daemon: Daemon, user: TestUser) -> str:
    result = daemon.cli("logon", user.name, "--json")
    assert result.returncode == 0, result.stderr
    return str(json.loads(result.stdout)["session"]["id"])


def test_sessions_marks_own_and_hides_others_from_standard_users(
    fake_daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    a, b = logon(fake_daemon, ana), logon(fake_daemon, bia)
    mine = fake_daemon.cli_json("sessions", user=ana)
    assert [(s["id"], s["own"]) for s in mine] == [(a, True)]
    table = fake_daemon.cli("sessions", user=ana).stdout.splitlines()
    assert table[0].split() == ["ID", "USER", "STATE", "BLOCKED", "DISPLAY", "LOGON", "IDLE", "CLIENT"]
    assert table[1].startswith(">") and ana.name in table[1]
    assert {s["id"] for s in fake_daemon.sessions()} == {a, b}


def test_exit_codes(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    a, b = logon(fake_daemon, ana), logon(fake_daemon, bia)
    # a standard user on another's session: 3, and the session keeps running
    refused = fake_daemon.cli("logoff", b, "--force", user=ana)
    assert refused.returncode == 3
    assert b in refused.stderr and "another user" in refused.stderr
    assert b in {s["id"] for s in fake_daemon.sessions()}
    # unknown id only: 2, naming the id
    unknown = fake_daemon.cli("block", "4242")
    assert unknown.returncode == 2 and "4242" in unknown.stderr
    # one unknown, one done: 1, and the good one is done
    mixed = fake_daemon.cli("block", "4242", a)
    assert mixed.returncode == 1
    assert f"{a}\t{ana.name}\tblocked" in mixed.stdout
    assert [s["blocked"] for s in fake_daemon.sessions() if s["id"] == a] == [True]
    # bad usage: 2
    assert fake_daemon.cli("block").returncode == 2
    assert fake_daemon.cli("unblock", a, "--all").returncode == 2
    # the standard user's own session, no id: 0
    own = fake_daemon.cli("logoff", "--force", user=ana)
    assert own.returncode == 0, own.stderr
    assert [s["id"] for s in fake_daemon.sessions()] == [b]


def test_unreachable_daemon_exits_4(fake_daemon: Daemon) -> None:
    fake_daemon.stop()
    result = fake_daemon.cli("sessions")
    assert result.returncode == 4
    assert "cannot reach the polydesk daemon" in result.stderr


def test_what_if_ends_nothing(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ids = [logon(fake_daemon, make_user(n)) for n in ("a", "b")]
    result = fake_daemon.cli("logoff", "--all", "--what-if")
    assert result.returncode == 0
    assert result.stdout.count("would-end") == 2
    assert [s["id"] for s in fake_daemon.sessions()] == ids


def test_several_sessions_need_confirmation(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    users = [make_user(n) for n in ("a", "b")]
    ids = [logon(fake_daemon, u) for u in users]
    no_tty = fake_daemon.cli("logoff", *ids, "--force")
    assert no_tty.returncode == 2 and "--yes" in no_tty.stderr
    assert len(fake_daemon.sessions()) == 2
    done = fake_daemon.cli("logoff", *ids, "--force", "--yes")
    assert done.returncode == 0 and fake_daemon.sessions() == []


def test_audit_for_admins_only(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana, boss = make_user("ana"), make_user("boss", role="admin")
    a = logon(fake_daemon, ana)
    assert fake_daemon.cli("msg", a, "--time", "5", "hello <b>class</b>", user=boss).returncode == 0
    assert fake_daemon.cli("audit", user=ana).returncode == 3
    records = json.loads(fake_daemon.cli("audit", "--json", user=boss).stdout)
    message = records[-2]
    assert (message["caller"], message["action"], message["targets"]) == (boss.name, "message", [a])
    assert message["detail"]["text"] == "hello <b>class</b>"
    refusal = records[-1]
    assert (refusal["caller"], refusal["action"], refusal["allowed"]) == (ana.name, "audit", False)


def test_logon_resumes_the_same_session(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    first = logon(fake_daemon, ana)
    assert fake_daemon.cli("disconnect", first).returncode == 0
    assert fake_daemon.sessions()[0]["state"] == "disconnected"
    again = fake_daemon.cli("logon", ana.name)
    assert again.stdout.split("\t")[:3] == [first, ana.name, "resumed"]
    assert fake_daemon.cli("logon", make_user("bia").name, user=ana).returncode == 3


def test_bad_input_is_refused_clearly_and_shown_safely(
    fake_daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana = make_user("ana")
    a = logon(fake_daemon, ana)
    huge = fake_daemon.cli("msg", a, "x" * 5000)
    assert huge.returncode == 2 and "2000" in huge.stderr
    odd = fake_daemon.cli("block", "../../etc/passwd", "\x1b[2J", "' OR 1=1 --")
    assert odd.returncode == 2
    assert "no session with id '../../etc/passwd'" in odd.stderr
    assert "\x1b" not in odd.stderr  # the escape is shown, not obeyed
    assert fake_daemon.cli("msg", a, "   ").returncode == 2  # an empty message
    # Terminal escapes go nowhere (issue 13): refused by name, and not echoed back.
    nasty = "<script>alert(1)</script>\x1b]0;pwned\x07"
    refused = fake_daemon.cli("block", a, "--message", nasty)
    assert refused.returncode == 2 and "message: control character U+001B" in refused.stderr
    assert "\x1b" not in refused.stderr and "\x07" not in refused.stderr
    markup = "<script>alert(1)</script> & 'quotes'"
    assert fake_daemon.cli("block", a, "--message", markup).returncode == 0
    stored = json.loads(fake_daemon.cli("audit", "--json").stdout)[-1]
    assert stored["detail"]["message"] == markup  # kept verbatim, escaped only where shown
