"""Issue 13, point 2: desktops only for people. An administrator of Polydesk must not become
root of the machine (a root desktop, driven through the station bridge), and service accounts
(nobody, www-data: no login shell, uid below UID_MIN) get no desktop, whoever asks and by
whichever way in: the CLI, REST, the web station, the account itself over the Unix socket."""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
from collections.abc import Callable, Iterator

import pytest

from tests.harness import Daemon
from tests.test_daemon import logon
from tests.users import TestUser, remove_user, user_pids
from tests.web.webclient import signin

NOLOGIN = "/usr/sbin/nologin"
Accounts = Callable[..., TestUser]


@pytest.fixture
def service_account() -> Iterator[Accounts]:
    """Accounts as a package makes them (``useradd --system``, no login shell), named pdt-."""
    made: list[TestUser] = []

    def make(shell: str = NOLOGIN, password: bool = False) -> TestUser:
        name = f"pdt-svc-{secrets.token_hex(3)}"
        subprocess.run(["useradd", "--system", "--shell", shell, name], check=True)
        entry = pwd.getpwnam(name)
        user = TestUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir,
                        secrets.token_urlsafe(12) if password else "")
        made.append(user)
        if password:
            subprocess.run(["chpasswd"], input=f"{name}:{user.password}\n", text=True, check=True)
        return user

    yield make
    for user in made:
        for pid in user_pids(user.uid):
            os.kill(pid, 9)
        remove_user(user)


def refusals(daemon: Daemon, user: str) -> list[dict[str, object]]:
    return [r for r in daemon.cli_json("audit")
            if r["action"] == "logon" and not r["allowed"] and r["detail"].get("user") == user]


def test_an_administrator_cannot_start_a_root_desktop(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    boss = make_user("boss", "admin")
    try:
        for caller in (boss, None):  # a member of polydesk-admin, and root itself
            refused = daemon.cli("logon", "root", user=caller)
            assert refused.returncode == 3, refused.stdout + refused.stderr
            assert "'root'" in refused.stderr and "superuser" in refused.stderr
        assert daemon.sessions() == []
        assert [r["caller"] for r in refusals(daemon, "root")] == [boss.name, "root"]
    finally:  # without the fix: root's desktop, which "logoff --all" (by root) leaves alone
        for session in daemon.sessions():
            daemon.cli("logoff", str(session["id"]), "--force")


def test_a_service_account_gets_no_desktop_from_an_administrator_or_from_itself(
    daemon: Daemon, make_user: Callable[..., TestUser], service_account: Accounts
) -> None:
    boss = make_user("boss", "admin")
    service = service_account()
    for caller in (boss, service):  # the service itself, over the 0666 Unix socket
        refused = daemon.cli("logon", service.name, user=caller)
        assert refused.returncode == 3, refused.stdout + refused.stderr
        assert f"'{service.name}'" in refused.stderr and "system account" in refused.stderr
    # A person's uid but no login shell (an account locked by giving it nologin).
    locked = make_user("locked")
    subprocess.run(["usermod", "--shell", NOLOGIN, locked.name], check=True)
    refused = daemon.cli("logon", locked.name, user=boss)
    assert refused.returncode == 3 and f"{NOLOGIN} is not in /etc/shells" in refused.stderr

    assert daemon.sessions() == [] and user_pids(service.uid) == [] and user_pids(locked.uid) == []
    assert [r["caller"] for r in refusals(daemon, service.name)] == [boss.name, service.name]
    assert [r["caller"] for r in refusals(daemon, locked.name)] == [boss.name]
    # People still get theirs.
    ana = make_user("ana")
    assert logon(daemon, ana)["user"] == ana.name and user_pids(ana.uid)


def test_a_service_account_with_a_password_gets_no_desktop_from_the_web_station(
    daemon: Daemon, service_account: Accounts
) -> None:
    service = service_account(password=True)
    with signin(daemon, service) as browser:  # PAM's "login" stack does not look at the shell
        answer = browser.post("/ui/own/logon")
    assert answer.status_code == 403 and service.name in answer.text, answer.text
    assert daemon.sessions() == [] and user_pids(service.uid) == []
    assert [r["via"] for r in refusals(daemon, service.name)] == ["web"]


def test_the_exception_setting_gives_only_the_named_account_a_desktop(
    daemon_factory: Callable[..., Daemon], service_account: Accounts
) -> None:
    kiosk, other = service_account(), service_account()
    daemon = daemon_factory(extra_config=f'allowed_system_accounts = ["{kiosk.name}"]')
    started = logon(daemon, kiosk)
    assert started["user"] == kiosk.name and user_pids(kiosk.uid)
    assert daemon.cli("logon", other.name).returncode == 3
    assert daemon.cli("logoff", str(started["id"]), "--force").returncode == 0
    assert user_pids(kiosk.uid) == []
