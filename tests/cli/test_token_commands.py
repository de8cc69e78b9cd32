"""`polydesk token create|list|revoke` through the daemon: administrators only, the token shown once."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.harness import Daemon
from tests.users import TestUser


def test_token_commands(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    admin, teacher, ana = make_user("adm", "admin"), make_user("tch", "dashboard"), make_user("ana")
    made = fake_daemon.cli("token", "create", "--user", teacher.name, "--note", "lab", user=admin)
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("pdk_") and "shown only once" in made.stderr
    with httpx.Client(base_url=fake_daemon.url, headers={"Authorization": f"Bearer {token}"}) as script:
        assert script.get("/api/v1/whoami").json()["user"] == teacher.name
        listed = fake_daemon.cli("token", "list", user=admin)
        assert listed.returncode == 0 and teacher.name in listed.stdout and token not in listed.stdout
        token_id = listed.stdout.split("\t")[0]
        assert fake_daemon.cli("token", "revoke", token_id, user=admin).returncode == 0
        assert script.get("/api/v1/whoami").status_code == 401
    refused = fake_daemon.cli("token", "create", user=ana)
    assert refused.returncode == 3 and "administrators" in refused.stderr
    assert fake_daemon.cli("token", "revoke", "nope", user=admin).returncode == 2
    own = fake_daemon.cli("token", "create", user=admin)  # default: a token acting as yourself
    assert own.returncode == 0 and admin.name in own.stderr
