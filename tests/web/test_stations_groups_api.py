"""Named stations and saved groups through REST and the CLI (issue 14.9): who may see and change
them, what is audited, and a student who forges another station's cookie."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.stationclient import refusal
from tests.web.webclient import COOKIE, Room, logon, signin, socket_client

STATION_COOKIE = "polydesk_station"


def handshake(client: httpx.Client, daemon: Daemon, station: str | None) -> dict[str, str]:
    cookies = f"{COOKIE}={client.cookies[COOKIE]}" + (f"; {STATION_COOKIE}={station}" if station else "")
    return {"Cookie": cookies, "Origin": daemon.url}


def test_a_browser_station_gets_a_name_an_administrator_may_change(room: Room) -> None:
    daemon = room.daemon
    with signin(daemon, room.ana) as ana, signin(daemon, room.teacher) as teacher, \
            signin(daemon, room.admin) as admin:
        first = ana.cookies[STATION_COOKIE]  # the station page (ana's home) made her browser a station
        assert ana.get("/").status_code == 200 and ana.cookies[STATION_COOKIE] == first  # kept
        stations = teacher.get("/api/v1/stations").json()
        mine = next(s for s in stations if s["id"] == first.split(":")[0])
        assert mine["name"].startswith("Station ") and mine["session_id"] is None  # empty: no session
        assert ana.get("/api/v1/stations").status_code == 403  # students do not list stations
        refused = teacher.patch(f"/api/v1/stations/{mine['id']}", json={"name": "Front row"})
        assert refused.status_code == 403 and "administrators" in refused.text
        bad = admin.patch(f"/api/v1/stations/{mine['id']}", json={"name": "two\nlines"})
        assert bad.status_code == 400 and "name" in bad.json()["error"]["message"]
        renamed = admin.patch(f"/api/v1/stations/{mine['id']}", json={"name": "Front row <1>"})
        assert renamed.status_code == 200 and renamed.json()["name"] == "Front row <1>"
        assert admin.patch("/api/v1/stations/999999", json={"name": "x"}).status_code == 404
        # a session at the station carries its name (the bridge checked the signed cookie)
        a = logon(daemon, room.ana)
        status, _ = refusal(daemon, a, handshake(ana, daemon, first))
        assert status == 409  # the fake host has no screen: attached, then refused
        assert teacher.get(f"/api/v1/sessions/{a}").json()["station"] == "Front row <1>"
        # a student who writes another station's number (or anything) into the cookie is refused
        number, _, rest = first.partition(":")
        for forged in (f"{int(number) + 1}:{rest}", first[:-2] + "xx", "1"):
            status, body = refusal(daemon, a, handshake(ana, daemon, forged))
            assert status == 403 and "station" in body["error"]["message"], forged
        home = ana.get("/", headers={"Cookie": f"{COOKIE}={ana.cookies[COOKIE]}; {STATION_COOKIE}=1:forged"})
        assert home.status_code == 200 and home.cookies[STATION_COOKIE] not in ("1:forged", first)
        audit = admin.get("/api/v1/audit").json()
        actions = [(r["action"], r["allowed"], r["caller"]) for r in audit]
        assert ("rename-station", False, room.teacher.name) in actions
        assert ("rename-station", True, room.admin.name) in actions


def test_groups_and_card_order_over_rest(room: Room) -> None:
    daemon = room.daemon
    with signin(daemon, room.teacher) as teacher, signin(daemon, room.ana) as ana, \
            signin(daemon, room.admin) as admin:
        saved = teacher.put("/api/v1/groups/Maths 7B", json={"members": [room.ana.name, room.bia.name,
                                                                          room.ana.name]})
        assert saved.status_code == 200 and saved.json()["members"] == [room.ana.name, room.bia.name]
        assert [g["name"] for g in admin.get("/api/v1/groups").json()] == ["Maths 7B"]  # shared
        assert ana.get("/api/v1/groups").status_code == 403
        assert ana.put("/api/v1/groups/Mine", json={"members": [room.ana.name]}).status_code == 403
        assert teacher.put("/api/v1/groups/%0A", json={"members": []}).status_code == 400
        assert teacher.put("/api/v1/card-order", json={"users": [room.bia.name, room.ana.name]}).json() == [
            room.bia.name, room.ana.name]
        assert teacher.get("/api/v1/card-order").json() == [room.bia.name, room.ana.name]
        assert admin.get("/api/v1/card-order").json() == []  # each teacher's own
        assert teacher.delete("/api/v1/groups/Maths 7B").status_code == 204
        assert teacher.delete("/api/v1/groups/Maths 7B").status_code == 404
        audit = admin.get("/api/v1/audit").json()
        changes = [(r["caller"], r["results"][0]["status"]) for r in audit if r["action"] == "groups"]
        assert changes == [(room.teacher.name, "saved"), (room.ana.name, "not-permitted"),
                           (room.teacher.name, "deleted")]


def test_stations_and_groups_commands(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    admin, teacher, ana = make_user("adm", "admin"), make_user("tch", "dashboard"), make_user("ana")
    with signin(fake_daemon, ana) as browser:
        number = browser.cookies[STATION_COOKIE].split(":")[0]
    listed = fake_daemon.cli("stations", user=teacher)
    assert listed.returncode == 0 and f"{number}\tStation {number}\tempty" in listed.stdout, listed
    assert fake_daemon.cli("stations", "rename", number, "Lab 2", user=teacher).returncode == 3
    renamed = fake_daemon.cli("stations", "rename", number, "Lab 2", user=admin)
    assert renamed.returncode == 0 and "Lab 2" in renamed.stdout
    rows = json.loads(fake_daemon.cli("stations", "--json", user=admin).stdout)
    assert [r["name"] for r in rows if r["id"] == number] == ["Lab 2"]
    assert fake_daemon.cli("stations", user=ana).returncode == 3
    made = fake_daemon.cli("groups", "save", "Art", ana.name, "zeca", user=teacher)
    assert made.returncode == 0 and f"Art\t{ana.name} zeca" in made.stdout
    shown = json.loads(fake_daemon.cli("groups", "--json", user=admin).stdout)
    assert shown[0]["members"] == [ana.name, "zeca"]
    assert fake_daemon.cli("groups", "save", "Mine", ana.name, user=ana).returncode == 3
    assert fake_daemon.cli("groups", "delete", "Art", user=teacher).returncode == 0
    assert fake_daemon.cli("groups", "delete", "Art", user=teacher).returncode == 2
    with socket_client(fake_daemon) as root:
        assert root.get("/api/v1/groups").json() == []
