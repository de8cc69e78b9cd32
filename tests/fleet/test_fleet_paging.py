"""The fleet's sessions through a real daemon's REST API and CLI, with 30 simulated hosts of 20
sessions publishing into the bucket: pages by cursor, filters done by the daemon, the same roles
as the whole list, and bad query values answered 400 naming the parameter."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from polydesk.core.model import SessionState
from polydesk.fleet.wire import new_seed
from tests.fleet.simulated import Publishing, SimulatedHost, daemon_config
from tests.harness import Daemon, Nats, wait_for
from tests.users import TestUser

HOSTS, SESSIONS = 30, 20


def test_pages_filters_roles_and_bad_values(
    nats_server: Nats, daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser],
    tmp_path: Path,
) -> None:
    ana, teacher = make_user("ana"), make_user("tch", "dashboard")
    simulated = [SimulatedHost(i, SESSIONS) for i in range(HOSTS)]
    simulated[7].sessions[3] = simulated[7].sessions[3].with_(user=ana.name)
    simulated[29].sessions[0] = simulated[29].sessions[0].with_(user=ana.name)
    simulated[3].sessions[0] = simulated[3].sessions[0].with_(state=SessionState.DISCONNECTED)
    seed = tmp_path / "A.seed"
    seed.write_bytes(new_seed() + b"\n")
    seed.chmod(0o600)
    daemon = daemon_factory(extra_config=daemon_config(simulated, nats_server.urls[0], str(seed), name="A"),
                            backends='["fake"]')
    total = HOSTS * SESSIONS
    with Publishing(simulated, nats_server.urls[0]), daemon.client("/api/v1") as http:
        wait_for(lambda: http.get("/fleet/sessions", params={"limit": 1}).json()["total"] == total,
                 timeout=60, what="the daemon to mirror the simulated fleet")
        everything = http.get("/fleet/sessions").json()  # the whole list: a JSON list, as before
        assert isinstance(everything, list) and len(everything) == total

        # Pages by cursor walk the same list, in the same order.
        walked, cursor = [], None
        while True:
            following = {"cursor": cursor} if cursor else {}
            page = http.get("/fleet/sessions", params={"limit": 250, **following})
            body = page.json()
            assert page.status_code == 200 and body["total"] == total and len(body["sessions"]) <= 250
            walked += body["sessions"]
            cursor = body["next"]
            if cursor is None:
                break
        assert [s["id"] for s in walked] == [s["id"] for s in everything]

        # Filters, done by the daemon.
        far = http.get("/fleet/sessions", params={"q": "STUDENT02919", "limit": 10}).json()
        assert ([s["id"] for s in far["sessions"]], far["total"], far["next"]) == (["sim029/20"], 1, None)
        assert [s["id"] for s in http.get("/fleet/sessions", params={"state": "disconnected"}).json()] == [
            "sim003/1"]
        on_one = http.get("/fleet/sessions", params={"host": "sim012", "limit": 500}).json()
        assert [s["id"] for s in on_one["sessions"]] == [f"sim012/{n}" for n in range(1, SESSIONS + 1)]

        # Bad values: 400, naming the parameter.
        other_query = http.get("/fleet/sessions", params={"limit": 5, "q": "student"}).json()["next"]
        for params, named in (
            ({"limit": 0}, "limit"), ({"limit": 501}, "limit"), ({"limit": "many"}, "limit"),
            ({"limit": 5, "cursor": "forged.cursor"}, "cursor: not a cursor this daemon gave"),
            ({"limit": 5, "cursor": other_query}, "cursor: it belongs to another query"),
            ({"q": "ana\x01"}, "q: control character U+0001"), ({"q": "x" * 201}, "q"),
            ({"state": "ended"}, "state: must be one of"),
        ):
            answer = http.get("/fleet/sessions", params=params)
            assert answer.status_code == 400, (params, answer.status_code)
            assert answer.json()["error"]["code"] == "invalid-request"
            assert named in answer.json()["error"]["message"], (params, answer.json())
        assert http.get("/fleet/sessions", params={"host": "nowhere", "limit": 5}).status_code == 404

    # The CLI pages through it, with the same filters; roles are the whole list's.
    listed = daemon.cli_json("sessions", "--fleet", user=teacher)
    assert [s["id"] for s in listed] == [s["id"] for s in everything]
    found = daemon.cli("sessions", "--fleet", "--search", "student00719", user=teacher).stdout
    assert "sim007/20" in found and "sim007/19" not in found
    mine = daemon.cli_json("sessions", "--fleet", user=ana)
    assert [(s["id"], s["own"]) for s in mine] == [("sim007/4", True), ("sim029/1", True)]
    assert [s["id"] for s in daemon.cli_json("sessions", "--state", "disconnected", user=ana)] == []
