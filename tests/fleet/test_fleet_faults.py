"""Faults: a daemon killed with kill -9 shows offline, its entries expire, and it comes back
with its sessions; a NATS node of a 3-node cluster restarts and nothing is lost."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from typing import Any

import nats
import nats.js.errors

from tests.fleet.hosts import Host
from tests.fleet.test_fleet_commands import logon
from tests.harness import Nats, NatsNode, wait_for
from tests.users import TestUser, user_pids


def test_killed_daemon_shows_offline_expires_and_recovers(
    nats_server: Nats, make_fleet: Callable[..., list[Host]], make_user: Callable[..., TestUser]
) -> None:
    a, b = make_fleet(nats_server)
    bia = make_user("bia")
    session = logon(b.daemon, bia)
    wait_for(lambda: [s["id"] for s in a.fleet_sessions()] == [f"B/{session}"])

    b.daemon.kill()
    killed = time.monotonic()
    wait_for(lambda: not a.hosts()["B"]["online"], timeout=10, show=lambda: a.hosts())
    assert time.monotonic() - killed < 10
    assert [s["host_online"] for s in a.fleet_sessions()] == [False]  # still listed, as offline
    refused = a.daemon.cli("logoff", f"B/{session}", "--force", "--yes", "--json")
    assert refused.returncode == 1
    assert json.loads(refused.stdout)["results"][0]["reason"] == "host B is offline"
    everyone = json.loads(a.daemon.cli("logoff", "--all", "--fleet", "--force", "--yes", "--json").stdout)
    assert [(r["id"], r["reason"]) for r in everyone["results"]] == [("B/*", "host B is offline")]
    assert user_pids(bia.uid) != []  # the session runs on without its daemon

    # Nothing refreshes B's entries any more: they expire (stale_after is 10 s here).
    wait_for(lambda: "B" not in a.hosts() and a.fleet_sessions() == [], timeout=20, show=lambda: a.hosts())

    b.daemon.start()  # re-adopts the session and publishes it again
    wait_for(lambda: a.hosts().get("B", {}).get("online"), timeout=10, show=lambda: a.hosts())
    wait_for(lambda: [(s["id"], s["host_online"]) for s in a.fleet_sessions()] == [
        (f"B/{session}", True)], show=lambda: a.fleet_sessions())
    result = a.daemon.cli("logoff", f"B/{session}", "--force", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert user_pids(bia.uid) == []


def test_nats_node_restart_loses_nothing(
    nats_cluster: Nats, make_fleet: Callable[..., list[Host]], make_user: Callable[..., TestUser]
) -> None:
    a, b = make_fleet(nats_cluster, replicas=3)
    users = [make_user(n) for n in ("ana", "bia", "caio")]
    ids = [logon(b.daemon, u) for u in users]
    expected = {f"B/{i}" for i in ids}
    wait_for(lambda: {s["id"] for s in a.fleet_sessions()} == expected)

    # Restart the node that leads the bucket's stream (the worst one to lose), then another.
    for _ in range(2):
        leader = next(n for n in nats_cluster.nodes if _leads(n))
        leader.stop()
        assert {s["id"] for s in a.fleet_sessions()} == expected  # A's picture holds meanwhile
        result = a.daemon.cli("block", f"B/{ids[0]}", "--message", "Exam", "--json")
        assert result.returncode == 0, result.stdout + result.stderr  # commands go on
        leader.start()
        wait_for(lambda: _caught_up(nats_cluster.nodes), timeout=20,
                 show=lambda: [_stream(n) for n in nats_cluster.nodes])

    # Every node has the bucket with every key; a restarted A reads the whole fleet back from it.
    for node in nats_cluster.nodes:
        assert _keys(node) >= len(ids) + 2, node.jsz()
    a.daemon.stop()
    a.daemon.start()
    wait_for(lambda: all(v["online"] for v in a.hosts().values()) and len(a.hosts()) == 2)
    wait_for(lambda: {s["id"]: s["blocked"] for s in a.fleet_sessions()} == {
        f"B/{ids[0]}": True, f"B/{ids[1]}": False, f"B/{ids[2]}": False}, show=lambda: a.fleet_sessions())
    result = a.daemon.cli("logoff", f"B/{ids[1]}", "--force", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert user_pids(users[1].uid) == [] and user_pids(users[0].uid) != []


def test_hosts_fill_again_a_nats_that_lost_its_store(
    nats_server: Nats, make_fleet: Callable[..., list[Host]], make_user: Callable[..., TestUser]
) -> None:
    """NATS redeployed from nothing: each host makes the bucket again and publishes itself and
    its sessions again, as it does after any reconnection."""
    a, b = make_fleet(nats_server)
    users = [make_user(n) for n in ("ana", "bia")]
    ids = [logon(b.daemon, u) for u in users]
    wait_for(lambda: {s["id"] for s in a.fleet_sessions()} == {f"B/{i}" for i in ids})

    node = nats_server.nodes[0]
    node.stop()
    shutil.rmtree(node.store)
    node.start()
    wanted = {"host.A", "host.B", *(f"session.B.{i}" for i in ids)}
    wait_for(lambda: _bucket_keys(node.url) >= wanted, timeout=20, show=lambda: _bucket_keys(node.url))
    a.daemon.stop()
    a.daemon.start()  # a reader that knows nothing but the new bucket
    wait_for(lambda: {s["id"] for s in a.fleet_sessions()} == {f"B/{i}" for i in ids})
    result = a.daemon.cli("logoff", f"B/{ids[0]}", "--force", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert user_pids(users[0].uid) == [] and user_pids(users[1].uid) != []


def _bucket_keys(url: str) -> set[str]:
    async def keys() -> set[str]:
        client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
        try:
            kv = await client.jetstream(timeout=2).key_value("polydesk_fleet")
            return set(await kv.keys())
        except (nats.js.errors.NotFoundError, nats.js.errors.NoKeysError):
            return set()
        finally:
            await client.close()

    return asyncio.run(keys())


def _stream(node: NatsNode) -> dict[str, Any] | None:
    for account in node.jsz().get("account_details", []):
        for stream in account.get("stream_detail", []):
            if stream["name"] == "KV_polydesk_fleet":
                return dict(stream)
    return None


def _leads(node: NatsNode) -> bool:
    stream = _stream(node)
    cluster = stream.get("cluster", {}) if stream else {}
    return isinstance(cluster, dict) and cluster.get("leader") == node.name


def _caught_up(nodes: list[NatsNode]) -> bool:
    """Every node is up with the stream, which has a leader, and every copy has caught up: the
    leader sees each replica recently and a few messages behind at most, and every node holds
    the same last message. (A follower's view of another follower is stale: followers do not
    hear from each other, so only the leader's view of the replicas counts.)"""
    try:
        streams = [_stream(node) for node in nodes]
    except OSError:
        return False
    if any(not stream for stream in streams):
        return False
    leaders = [s for n, s in zip(nodes, streams, strict=True)
               if s and s.get("cluster", {}).get("leader") == n.name]
    if len(leaders) != 1:
        return False
    # "current" flickers under steady heartbeats; a replica a few messages behind is caught up.
    if not all(replica.get("lag", 0) < 50 and replica.get("active", 0) < 5e9
               for replica in leaders[0]["cluster"].get("replicas", [])):
        return False
    return len({s["state"]["last_seq"] for s in streams if s}) == 1


def _keys(node: NatsNode) -> int:
    stream = _stream(node)
    state = stream.get("state", {}) if stream else {}
    return int(state.get("num_subjects", 0)) if isinstance(state, dict) else 0
