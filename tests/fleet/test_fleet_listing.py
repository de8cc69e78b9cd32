"""Listing a big fleet from the mirror: the whole list, pages that follow each other through
changes, filters done by the daemon, who sees what, and cursors that cannot be forged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from polydesk.core.model import Caller, InvalidRequest, Role
from polydesk.fleet.listing import NOTHING_HERE, Cursors, Here, Listing, Query
from polydesk.fleet.state import FleetMirror
from polydesk.fleet.wire import Signer, new_seed

KEY = Signer(new_seed()).public_key
ADMIN = Caller("root", 0, Role.ADMIN)
TEACHER = Caller("tch", 3000, Role.DASHBOARD)
HOSTS = ("lab1", "lab2", "lab3", "lab4")


class Wall:
    def __init__(self) -> None:
        self.now = 10_000.0

    def __call__(self) -> float:
        return self.now


def session(host: str, number: int, **extra: Any) -> dict[str, Any]:
    return {"id": str(number), "user": f"u-{host}-{number}", "uid": 2000 + number, "role": "standard",
            "state": "active", "blocked": False, "client": f"10.0.{HOSTS.index(host)}.{number}",
            "display": f":{number}", "station": None, **extra}


def put(mirror: FleetMirror, host: str, value: dict[str, Any]) -> None:
    mirror.apply(f"session.{host}.{value['id']}", json.dumps(value).encode())


@pytest.fixture
def fleet() -> tuple[FleetMirror, Listing, Wall]:
    mirror = FleetMirror("here", {h: KEY for h in ("here", *HOSTS)}, offline_after=6, stale_after=900)
    for host in HOSTS:
        mirror.apply(f"host.{host}", json.dumps({"name": host, "state": "online"}).encode())
        for number in range(1, 13):  # 12 sessions each: 1..12, so that 10 sorts after 9
            put(mirror, host, session(host, number))
    wall = Wall()
    return mirror, Listing(mirror, Cursors(wall=wall)), wall


def here(caller: Caller) -> Here:
    """This host's one session: the teacher's."""
    teacher = {"id": "1", "user": "tch", "uid": 3000, "state": "active", "blocked": False}
    return Here.of("here", [teacher], caller)


def everything(listing: Listing, caller: Caller, query: Query | None = None) -> list[dict[str, Any]]:
    return list(json.loads(b"".join(listing.everything(caller, here(caller), query or Query()))))


def pages(listing: Listing, caller: Caller, query: Query, limit: int) -> list[dict[str, Any]]:
    """Every page in turn, as the CLI and the page walk them."""
    seen: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = json.loads(listing.page(caller, here(caller), query, limit, cursor))
        assert len(page["sessions"]) <= limit
        seen += page["sessions"]
        cursor = page["next"]
        if cursor is None:
            assert len(seen) == page["total"]
            return seen


def test_the_whole_list_is_every_session_in_order_with_what_depends_on_the_caller(fleet: Any) -> None:
    mirror, listing, _ = fleet
    listed = everything(listing, TEACHER)
    assert [s["id"] for s in listed] == ["here/1"] + [f"{h}/{n}" for h in HOSTS for n in range(1, 13)]
    assert [s["id"] for s in listed if s["own"]] == ["here/1"]
    assert all(s["host_online"] for s in listed) and listed[5]["user"] == "u-lab1-5"
    # A session of the teacher's own name on another host is theirs there too.
    put(mirror, "lab3", session("lab3", 4, user="tch"))
    assert [s["id"] for s in everything(listing, TEACHER) if s["own"]] == ["here/1", "lab3/4"]
    # A change shows at once; a host gone offline says so on each of its sessions.
    put(mirror, "lab2", session("lab2", 2, state="disconnected"))
    mirror.apply("host.lab4", json.dumps({"name": "lab4", "state": "offline"}).encode())
    listed = {s["id"]: s for s in everything(listing, ADMIN)}
    assert listed["lab2/2"]["state"] == "disconnected"
    assert not listed["lab4/1"]["host_online"] and listed["lab1/1"]["host_online"]


def test_pages_walk_the_whole_list_once(fleet: Any) -> None:
    _, listing, _ = fleet
    assert pages(listing, ADMIN, Query(), 5) == everything(listing, ADMIN)
    assert pages(listing, ADMIN, Query(), 500) == everything(listing, ADMIN)


def test_pages_stay_in_place_while_sessions_come_and_go(fleet: Any) -> None:
    mirror, listing, _ = fleet
    first = json.loads(listing.page(ADMIN, here(ADMIN), Query(), 20, None))
    assert first["sessions"][-1]["id"] == "lab2/7" and first["total"] == 49
    mirror.apply("session.lab2.7", None)  # the last one shown ends
    mirror.apply("session.lab1.3", None)  # one already shown ends
    put(mirror, "lab1", session("lab1", 40))  # one comes before the place: not shown now
    put(mirror, "lab3", session("lab3", 40))  # one comes after it: shown in its turn
    rest = pages_from(listing, first["next"])
    assert [s["id"] for s in rest] == (
        [f"lab2/{n}" for n in range(8, 13)] + [f"lab3/{n}" for n in (*range(1, 13), 40)]
        + [f"lab4/{n}" for n in range(1, 13)])


def pages_from(listing: Listing, cursor: str) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while cursor:
        page = json.loads(listing.page(ADMIN, here(ADMIN), Query(), 7, cursor))
        seen += page["sessions"]
        cursor = page["next"]
    return seen


def test_filters_are_done_by_the_daemon(fleet: Any) -> None:
    mirror, listing, _ = fleet
    put(mirror, "lab4", session("lab4", 11, user="Maria.Silva", state="disconnected"))
    put(mirror, "lab1", session("lab1", 2, blocked=True))
    search = Query.checked(q=" maria ")
    assert [s["id"] for s in everything(listing, ADMIN, search)] == ["lab4/11"]
    assert [s["id"] for s in pages(listing, ADMIN, search, 1)] == ["lab4/11"]
    assert [s["id"] for s in everything(listing, ADMIN, Query.checked(q="lab3/12"))] == ["lab3/12"]
    assert [s["id"] for s in everything(listing, ADMIN, Query.checked(q="10.0.2.9"))] == ["lab3/9"]
    assert [s["id"] for s in everything(listing, ADMIN, Query.checked(state="disconnected"))] == ["lab4/11"]
    assert [s["id"] for s in everything(listing, ADMIN, Query.checked(state="blocked"))] == ["lab1/2"]
    on_lab2 = Query.checked(host="lab2", q="u-")
    assert [s["id"] for s in pages(listing, ADMIN, on_lab2, 4)] == [f"lab2/{n}" for n in range(1, 13)]
    page = json.loads(listing.page(ADMIN, here(ADMIN), Query.checked(q="lab"), 3, None))
    assert page["total"] == 48 and len(page["sessions"]) == 3


def test_a_standard_user_lists_only_sessions_of_their_own_name(fleet: Any) -> None:
    mirror, listing, _ = fleet
    put(mirror, "lab2", session("lab2", 9, user="ana"))
    put(mirror, "lab4", session("lab4", 1, user="ana"))
    ana = Caller("ana", 4242, Role.STANDARD)
    listed = json.loads(b"".join(listing.everything(ana, NOTHING_HERE, Query())))
    assert [s["id"] for s in listed] == ["lab2/9", "lab4/1"] and all(s["own"] for s in listed)
    page = json.loads(listing.page(ana, NOTHING_HERE, Query(), 1, None))
    assert ([s["id"] for s in page["sessions"]], page["total"]) == (["lab2/9"], 2)
    bob = Caller("bob", 1, Role.STANDARD)
    assert json.loads(b"".join(listing.everything(bob, NOTHING_HERE, Query()))) == []


def test_cursors_cannot_be_forged_reused_elsewhere_or_kept_for_ever(fleet: Any) -> None:
    _, listing, wall = fleet
    cursor = json.loads(listing.page(ADMIN, here(ADMIN), Query(), 5, None))["next"]
    body, _, signature = cursor.partition(".")
    tampered = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + signature
    for bad, why in ((tampered, "not a cursor this daemon gave"), ("junk", "not a cursor this daemon gave"),
                     ("", "not a cursor")):
        with pytest.raises(InvalidRequest, match=f"^cursor: {why}"):
            listing.page(ADMIN, here(ADMIN), Query(), 5, bad or ".")
    with pytest.raises(InvalidRequest, match=r"^cursor: it belongs to another query"):
        listing.page(ADMIN, here(ADMIN), Query.checked(q="u-"), 5, cursor)
    other_run = Listing(listing.mirror)  # the daemon restarted: another key
    with pytest.raises(InvalidRequest, match=r"^cursor: not a cursor this daemon gave"):
        other_run.page(ADMIN, here(ADMIN), Query(), 5, cursor)
    wall.now += 3600
    with pytest.raises(InvalidRequest, match=r"^cursor: older than"):
        listing.page(ADMIN, here(ADMIN), Query(), 5, cursor)


@pytest.mark.parametrize(("given", "named"), [
    ({"q": "a\x00b"}, "q: control character U\\+0000"), ({"q": "a\nb"}, "q: control character U\\+000A"),
    ({"q": "x" * 201}, "q: a search is at most"), ({"state": "ended"}, "state: must be one of"),
])
def test_bad_filters_are_named(given: dict[str, str], named: str) -> None:
    with pytest.raises(InvalidRequest, match=f"^{named}"):
        Query.checked(**given)
