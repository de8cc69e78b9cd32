"""Issue 8's acceptance: a command given on host A acts on host B's real Xvnc sessions, with
B's rules, audited on both; log off all across the fleet; remote thumbnails."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

from tests.fleet.hosts import Host
from tests.harness import Daemon, Nats, wait_for
from tests.users import TestUser, user_pids


def logon(daemon: Daemon, user: TestUser) -> str:
    result = daemon.cli("logon", user.name, "--json")
    assert result.returncode == 0, result.stderr + daemon.log.read_text()[-2000:]
    return str(json.loads(result.stdout)["session"]["id"])


def fleet_ids(host: Host) -> set[str]:
    return {s["id"] for s in host.fleet_sessions()}


def api(daemon: Daemon) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)),
                        base_url="http://polydesk/api/v1", timeout=60)


def test_command_on_one_host_logs_off_selected_sessions_of_another(
    nats_server: Nats, make_fleet: Callable[..., list[Host]], make_user: Callable[..., TestUser]
) -> None:
    a, b = make_fleet(nats_server)
    ana, bia, caio, dan = (make_user(n) for n in ("ana", "bia", "caio", "dan"))
    on_b = {u.name: logon(b.daemon, u) for u in (ana, bia, caio)}
    on_a = logon(a.daemon, dan)
    wanted = {f"B/{i}" for i in on_b.values()} | {f"A/{on_a}"}
    wait_for(lambda: fleet_ids(a) == wanted, show=lambda: fleet_ids(a))
    wait_for(lambda: all(len(user_pids(u.uid)) >= 2 for u in (ana, bia, caio, dan)))
    table = a.daemon.cli("sessions", "--fleet").stdout.splitlines()  # as people read it
    assert table[0].split()[-1] == "HOST" and len(table) == 5
    assert {(line.split()[0], line.split()[-1]) for line in table[1:]} == {
        (f"B/{i}", "B") for i in on_b.values()} | {(f"A/{on_a}", "A")}
    caio_pids = set(user_pids(caio.uid))

    # A standard user on A may not end someone else's session on B: B refuses, by its rules.
    refused = a.daemon.cli("logoff", f"B/{on_b[caio.name]}", "--force", "--yes", user=dan)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert caio_pids <= set(user_pids(caio.uid))

    result = a.daemon.cli("logoff", f"B/{on_b[ana.name]}", f"B/{on_b[bia.name]}", "--force", "--yes",
                          "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout)
    assert {(r["id"], r["status"]) for r in answer["results"]} == {
        (f"B/{on_b[ana.name]}", "ended"), (f"B/{on_b[bia.name]}", "ended")}
    assert user_pids(ana.uid) == [] and user_pids(bia.uid) == []
    assert caio_pids <= set(user_pids(caio.uid)), "a session not selected was touched"
    assert user_pids(dan.uid) != []
    assert [s["id"] for s in b.daemon.sessions()] == [on_b[caio.name]]
    wait_for(lambda: fleet_ids(a) == {f"B/{on_b[caio.name]}", f"A/{on_a}"}, show=lambda: fleet_ids(a))

    # Audited where it ran (the real action, via fleet:A) and where it was asked (forwarded).
    ran = [r for r in b.audit() if r["action"] == "logoff" and r["via"] == "fleet:A"]
    assert [r["allowed"] for r in ran] == [False, True]
    assert ran[-1]["caller"] == "root" and sorted(ran[-1]["targets"]) == sorted(
        [on_b[ana.name], on_b[bia.name]])
    assert ran[0]["caller"] == dan.name and ran[0]["results"][0]["status"] == "not-permitted"
    asked = [r for r in a.audit() if r["action"] == "logoff" and r["detail"].get("forwarded_to") == ["B"]]
    assert len(asked) == 2 and [x["status"] for x in asked[-1]["results"]] == ["ended", "ended"]

    # The thumbnail of B's session, fetched through A from B, and not again while unchanged.
    with api(a.daemon) as client:
        url = f"/fleet/sessions/B/{on_b[caio.name]}/thumbnail?size=small"
        first = client.get(url)
        assert first.status_code == 200 and first.content[:2] == b"\xff\xd8", first.text
        again = client.get(url, headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code in (200, 304)
        if again.status_code == 200:  # the screen changed meanwhile (a cursor, a clock): once more
            again = client.get(url, headers={"If-None-Match": again.headers["etag"]})
        assert again.status_code == 304
        gone = client.get(f"/fleet/sessions/B/{on_b[ana.name]}")
        assert gone.status_code == 404


def test_logoff_all_across_the_fleet(
    nats_server: Nats, make_fleet: Callable[..., list[Host]], make_user: Callable[..., TestUser]
) -> None:
    a, b, c = make_fleet(nats_server, ("A", "B", "C"))
    teacher = make_user("tch", role="dashboard")
    users = {host.name: [make_user(f"{host.name.lower()}{i}") for i in range(2)] for host in (a, b, c)}
    for host in (a, b, c):
        for user in users[host.name]:
            logon(host.daemon, user)
    own = logon(a.daemon, teacher)
    wait_for(lambda: len(a.fleet_sessions()) == 7, show=lambda: a.fleet_sessions())

    # Only host B, then every host: the teacher's own session on A stays, as "all" never includes it.
    result = a.daemon.cli("logoff", "--all", "--host", "B", "--force", "--yes", "--json", user=teacher)
    assert result.returncode == 0, result.stdout + result.stderr
    assert {r["id"].split("/")[0] for r in json.loads(result.stdout)["results"]} == {"B"}
    assert all(user_pids(u.uid) == [] for u in users["B"])
    assert all(user_pids(u.uid) != [] for u in users["A"] + users["C"])

    result = a.daemon.cli("logoff", "--all", "--fleet", "--force", "--yes", "--json", user=teacher)
    assert result.returncode == 0, result.stdout + result.stderr
    ended = json.loads(result.stdout)["results"]
    assert {r["status"] for r in ended} == {"ended"} and len(ended) == 4
    for user in [u for group in users.values() for u in group]:
        assert user_pids(user.uid) == [], f"{user.name}'s session survived log off all"
    assert [s["id"] for s in a.daemon.sessions()] == [own]
    assert b.daemon.sessions() == [] and c.daemon.sessions() == []
    wait_for(lambda: [s["id"] for s in a.fleet_sessions()] == [f"A/{own}"])
    via: dict[str, Any] = {h.name: [r["via"] for r in h.audit() if r["action"] == "logoff"] for h in (b, c)}
    assert via == {"B": ["fleet:A", "fleet:A"], "C": ["fleet:A"]}
