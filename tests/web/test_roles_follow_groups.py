"""Roles follow the Unix groups on a real daemon, without signing in again (issue 13, point 12):
a Dashboard user taken out of the group loses the Dashboard over the cookie, a token and the
Unix socket; a user put into the admin group has an administrator's session, which a Dashboard
user may no longer end, and one taken out of it a standard session again."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import httpx

from tests.harness import Daemon
from tests.users import ADMIN_GROUP, DASHBOARD_GROUP, TestUser
from tests.web.webclient import logon, signin, socket_client

CACHE_S = 1.0


def regroup(user: TestUser, group: str, add: bool) -> None:
    subprocess.run(["gpasswd", "-a" if add else "-d", user.name, group], check=True, capture_output=True)
    time.sleep(CACHE_S + 0.5)  # role_cache_seconds, and a little more


def block(client: httpx.Client, session_id: str) -> int:
    answer = client.post("/api/v1/sessions/block", json={"ids": [session_id]})
    if answer.status_code == 200:
        assert answer.json()["results"][0]["status"] == "blocked", answer.text
        client.post("/api/v1/sessions/unblock", json={"ids": [session_id]})
    return answer.status_code


def test_a_dashboard_user_taken_out_of_the_group_is_refused_every_way(
        daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]) -> None:
    daemon = daemon_factory(f"role_cache_seconds = {CACHE_S}", backends='["fake"]')
    teacher, ana = make_user("tch", "dashboard"), make_user("ana")
    session = logon(daemon, ana)
    with socket_client(daemon) as root:
        token = root.post("/api/v1/tokens", json={"user": teacher.name}).json()["token"]
    with signin(daemon, teacher) as web, httpx.Client(
            base_url=daemon.url, headers={"Authorization": f"Bearer {token}"}) as api:
        assert block(web, session) == 200 and block(api, session) == 200
        assert daemon.cli("block", session, user=teacher).returncode == 0
        assert daemon.cli("unblock", session, user=teacher).returncode == 0
        regroup(teacher, DASHBOARD_GROUP, add=False)
        assert web.get("/api/v1/whoami").json()["role"] == "standard"
        assert block(web, session) == 403, "the web cookie kept the Dashboard role"
        assert block(api, session) == 403, "the token kept the Dashboard role"
        cli = daemon.cli("block", session, user=teacher)
        assert cli.returncode == 3, cli.stdout + cli.stderr
    assert not any(s["blocked"] for s in daemon.sessions())


def test_a_sessions_role_follows_its_users_groups(
        daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]) -> None:
    daemon = daemon_factory(f"role_cache_seconds = {CACHE_S}", backends='["fake"]')
    teacher, bob = make_user("tch", "dashboard"), make_user("bob")
    session = logon(daemon, bob)
    with signin(daemon, teacher) as web:
        assert block(web, session) == 200
        regroup(bob, ADMIN_GROUP, add=True)  # bob becomes an administrator, his session running
        assert block(web, session) == 403, "a Dashboard user still acts on a new administrator's session"
        answer = web.post("/api/v1/sessions/logoff", json={"ids": [session], "what_if": True})
        assert answer.status_code == 403 and "only administrators" in answer.json()["error"]["message"]
        assert {s["id"]: s["role"] for s in daemon.sessions()}[session] == "admin"
        regroup(bob, ADMIN_GROUP, add=False)  # and back
        assert block(web, session) == 200
        assert {s["id"]: s["role"] for s in daemon.sessions()}[session] == "standard"
