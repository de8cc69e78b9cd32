"""Fleet pieces without processes: the [fleet] settings, the mirror's judgement of hosts, and
FleetDesk's routing of ids to hosts (over a fake link and the in-memory backend, fake)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.config.settings import Settings, load_settings, settings_markdown
from polydesk.core.events import EventBus
from polydesk.core.model import Account, Caller, InvalidRequest, Role, Status, Target, UnknownHost
from polydesk.fleet.desk import FleetDesk, HostUnreachable
from polydesk.fleet.listing import Query
from polydesk.fleet.state import FleetMirror
from polydesk.fleet.wire import Signer, new_seed
from polydesk.manager.manager import Manager
from polydesk.store.store import Store

KEY = Signer(new_seed()).public_key


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "polydesk.toml"
    path.write_text(text)
    return str(path)


def test_no_fleet_section_means_no_fleet(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "logoff_grace = 3\n"), env={}).fleet is None


def test_fleet_section(tmp_path: Path) -> None:
    text = (f'[fleet]\nhost = "lab1"\nservers = ["nats://10.0.0.5:4222"]\nheartbeat = 1\n'
            f'[fleet.trusted_hosts]\nlab2 = "{KEY}"\n')
    fleet = load_settings(write(tmp_path, text), env={}).fleet
    assert fleet is not None
    assert (fleet.host, fleet.servers, fleet.heartbeat, fleet.trusted_hosts) == (
        "lab1", ["nats://10.0.0.5:4222"], 1.0, {"lab2": KEY})
    assert load_settings(write(tmp_path, "[fleet]\n"), env={}).fleet.host  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "named"), [
    ('[fleet]\nhots = "x"\n', "hots"),
    ('[fleet]\nhost = "lab.1"\n', "fleet.host"),
    ("[fleet]\nheartbeat = true\n", "fleet.heartbeat"),
    ('[fleet.trusted_hosts]\nlab2 = "UNOTAKEY"\n', "fleet.trusted_hosts"),
    ("[fleet]\nheartbeat = 5\noffline_after = 6\n", "fleet.offline_after"),
    ("[fleet]\nreplicas = 2\n", "fleet.replicas"),
    ('fleet = "on"\n', "fleet"),
])
def test_bad_fleet_settings_are_named(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(InvalidRequest, match=named):
        load_settings(write(tmp_path, text), env={})


def test_fleet_settings_are_documented() -> None:
    assert "## `[fleet]`" in settings_markdown() and "| `trusted_hosts` |" in settings_markdown()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(host: str, state: str = "online") -> bytes:
    return json.dumps({"name": host, "state": state, "public_key": KEY}).encode()


def test_mirror_judges_hosts_by_its_own_clock_and_forgets_stale_ones() -> None:
    clock = Clock()
    mirror = FleetMirror("A", {"A": KEY, "B": KEY}, offline_after=4, stale_after=10, clock=clock,
                         wall=lambda: 5000.0)
    mirror.apply("host.B", record("B"))
    mirror.apply("session.B.7", json.dumps({"id": "7", "user": "ana"}).encode())
    mirror.apply("host.X", record("X"))  # not trusted: not shown
    assert [(h.name, h.online, h.sessions) for h in mirror.hosts()] == [("B", True, 1)]
    clock.now += 5
    assert not mirror.online("B") and mirror.sessions("B") != []  # offline, still listed
    mirror.apply("host.B", record("B"))
    assert mirror.online("B")
    mirror.apply("host.B", record("B", "offline"))  # stopped cleanly: offline at once
    assert not mirror.online("B")
    clock.now += 11
    mirror.expire()
    assert mirror.hosts() == [] and mirror.sessions("B") == []
    # An entry of the initial snapshot is dated by the server, not by its arrival.
    mirror.apply("host.B", record("B"), created=5000.0 - 30)
    assert not mirror.online("B")


def test_mirror_keeps_sessions_that_arrive_before_their_host() -> None:
    clock = Clock()
    mirror = FleetMirror("A", {"B": KEY}, offline_after=4, stale_after=10, clock=clock)
    mirror.apply("session.B.1", json.dumps({"id": "1", "user": "u"}).encode())
    mirror.expire()
    assert mirror.sessions("B") == []  # not shown without its host
    mirror.apply("host.B", record("B"))
    assert [s["id"] for s in mirror.sessions("B")] == ["1"]


def test_mirror_resync_drops_what_the_bucket_no_longer_has() -> None:
    mirror = FleetMirror("A", {"B": KEY}, offline_after=4, stale_after=10)
    mirror.apply("host.B", record("B"))
    for sid in ("1", "2"):
        mirror.apply(f"session.B.{sid}", json.dumps({"id": sid, "user": "u"}).encode())
    mirror.begin_resync()
    mirror.apply("host.B", record("B"))
    mirror.apply("session.B.2", json.dumps({"id": "2", "user": "u"}).encode())
    mirror.end_resync()
    assert [s["id"] for s in mirror.sessions("B")] == ["2"]


class FakeLink:
    """Host B answers every action with one result per id; host C never answers."""

    name = "A"
    request_timeout = 1.0
    listen = "127.0.0.1:8765"

    def __init__(self) -> None:
        self.mirror = FleetMirror("A", {"A": KEY, "B": KEY, "C": KEY}, offline_after=4, stale_after=60)
        for host in ("A", "B", "C"):
            self.mirror.apply(f"host.{host}", record(host))
        self.mirror.apply("session.B.5", json.dumps({"id": "5", "user": "ana"}).encode())
        self.asked: list[tuple[str, str, dict[str, Any]]] = []

    async def request(self, host: str, action: str, body: dict[str, Any],
                      timeout: float) -> tuple[dict[str, Any], bytes]:
        self.asked.append((host, action, body))
        if host == "C":
            raise HostUnreachable("host C did not answer within 1 s")
        ids = body.get("ids") or ["5"]
        return {"results": [{"id": i, "status": "disconnected", "user": "ana", "reason": None}
                            for i in ids]}, b""


@pytest.fixture
async def desk(tmp_path: Path) -> Any:
    store = Store(tmp_path / "polydesk.db")
    settings = Settings(state_dir=str(tmp_path), runtime_dir=str(tmp_path), backends=["fake"])

    def lookup(name: str) -> Account:
        return Account(name, 1000 + len(name), 1000, "/", "/bin/sh")

    manager = Manager([FakeBackend()], store, EventBus(), settings, lookup)
    await manager.start()
    link = FakeLink()
    yield FleetDesk(link, manager), link
    await manager.close()
    store.close()


ADMIN = Caller("root", 0, Role.ADMIN)


async def test_desk_routes_each_id_to_its_host(desk: Any) -> None:
    fleet, link = desk
    local, _ = await fleet.manager.logon(ADMIN, "bob")
    outcomes = await fleet.disconnect(ADMIN, Target(ids=(f"A/{local.id}", "B/5", "C/9", "Z/1", local.id)))
    assert [(o.id, o.status) for o in outcomes] == [
        (f"A/{local.id}", Status.DISCONNECTED), ("B/5", Status.DISCONNECTED), ("C/9", Status.FAILED),
        ("Z/1", Status.UNKNOWN), (local.id, Status.DISCONNECTED)]
    assert [(h, a, b["ids"]) for h, a, b in link.asked] == [("B", "disconnect", ["5"]),
                                                             ("C", "disconnect", ["9"])]
    assert link.asked[0][2]["caller"] == {"user": "root", "uid": 0, "role": "admin", "via": "cli"}
    forwarded = fleet.manager.store.audit(limit=1)[-1]
    assert forwarded.detail["forwarded_to"] == ["B", "C"] and forwarded.targets == ["B/5", "C/9"]


async def test_desk_all_means_this_host_unless_told(desk: Any) -> None:
    fleet, link = desk
    await fleet.manager.logon(ADMIN, "bob")
    assert all("/" not in o.id for o in await fleet.disconnect(ADMIN, Target(all=True)))
    assert link.asked == []
    everywhere = await fleet.disconnect(ADMIN, Target(all=True, scope="*"))
    assert sorted(o.id.split("/")[0] for o in everywhere) == ["A", "B", "C"]
    assert [o.reason for o in everywhere if o.id == "C/*"] == ["host C did not answer within 1 s"]
    with pytest.raises(UnknownHost):
        await fleet.disconnect(ADMIN, Target(all=True, scope="Z"))


async def test_desk_lists_other_hosts_sessions_by_user_name(desk: Any) -> None:
    fleet, _ = desk
    ana = Caller("ana", 4242, Role.STANDARD)
    bob = Caller("bob", 4243, Role.STANDARD)

    async def listed(caller: Caller, host: str | None = None) -> list[str]:
        pieces = await fleet.list_json(caller, Query(host=host))
        return [session["id"] for session in json.loads(b"".join(pieces))]

    assert await listed(ana) == ["B/5"]
    assert await listed(bob) == []
    assert await listed(ADMIN, "B") == ["B/5"]


async def test_manager_alone_refuses_fleet_scopes(desk: Any) -> None:
    fleet, _ = desk
    with pytest.raises(UnknownHost, match="fleet mode is off"):
        await fleet.manager.disconnect(ADMIN, Target(all=True, scope="*"))


async def test_desk_refuses_bad_text_before_sending_it_round_the_fleet(desk: Any) -> None:
    """Issue 13: the asking host checks text as every host does, and sends nothing."""
    fleet, link = desk
    for ask, field in ((fleet.block(ADMIN, Target(ids=("B/5",)), "\x1b[2J"), "message"),
                       (fleet.logoff(ADMIN, Target(all=True, scope="*"), message="a\x00b"), "message"),
                       (fleet.message(ADMIN, Target(ids=("B/5",)), "\x07"), "text")):
        with pytest.raises(InvalidRequest, match=f"^{field}: control character"):
            await ask
    assert link.asked == [] and fleet.manager.store.audit() == []
