"""A simulated fleet on a real nats-server, seen through a real daemon's API.

    python -m bench.fleet [--hosts 100] [--sessions 50] [--requests 200] [--window 30]

Starts nats-server (JetStream, loopback ports, a temporary store) and one real
daemon in fleet mode (the in-memory backend, fake; it trusts every simulated
host's key). Then N simulated hosts publish into the bucket exactly what a
daemon publishes, with its default timings: a heartbeat (the host's record)
every 2 s, every session once at start, each session again every third of
stale_after (spread evenly), and some activity: one session of each host
changes every ``--change-every`` seconds. Measured:

- fleet_list_p99_ms: GET /api/v1/fleet/sessions (all N x M sessions) through the
  daemon's Unix socket, 99th percentile of ``--requests`` sequential requests,
  while the hosts keep publishing;
- fleet_bytes_per_host_s: what one host sends to NATS per second, from the
  server's own count of bytes received (/varz in_bytes) over ``--window``
  seconds, divided by the hosts (the daemon's own beats are a rounding error);
- fleet_bytes_out_per_watcher_s: what the server sends per second over the same
  window (to the daemon's watcher, which sees every host, plus the put acks).

Prints a table and merges the figures into bench/results/fleet.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from typing import Any

import nats
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from bench.results import FLEET, merge
from polydesk.config.fleet import FleetSettings
from polydesk.core.events import public_session
from polydesk.core.model import Role, Session, SessionState
from polydesk.fleet.node import host_record
from polydesk.fleet.wire import Signer, host_key, new_seed, session_key
from tests.harness import Nats, make_daemon_dirs, shutdown, start_nats, wait_for

DEFAULTS = FleetSettings()


class SimulatedHost:
    def __init__(self, number: int, sessions: int) -> None:
        self.name = f"sim{number:03d}"
        self.key = Signer(new_seed()).public_key
        self.started = time.time()
        self.sessions = [Session(
            id=str(i + 1), user=f"student{number:03d}{i:02d}", uid=20000 + i, role=Role.STANDARD,
            backend="xvnc", state=SessionState.ACTIVE, logon_time=self.started - random.uniform(0, 3600),
            display=f":{10 + i}", client="10.1.2.3",
        ) for i in range(sessions)]

    def record(self) -> bytes:
        return host_record(self.name, self.key, "0.0.0.0:8765", len(self.sessions), self.started)

    def value(self, index: int) -> bytes:
        return json.dumps(public_session(self.sessions[index])).encode()

    def change_one(self) -> int:
        """What a teacher or a student does now and then: a session disconnects or comes back."""
        index = random.randrange(len(self.sessions))
        session = self.sessions[index]
        state = (SessionState.DISCONNECTED if session.state == SessionState.ACTIVE
                 else SessionState.ACTIVE)
        self.sessions[index] = session.with_(state=state)
        return index


async def publish(hosts: list[SimulatedHost], kv: KeyValue, change_every: float,
                  stop: asyncio.Event) -> None:
    """Every simulated host, with a daemon's timings, until ``stop``."""
    refresh_step = DEFAULTS.stale_after / 3 / max(1, len(hosts[0].sessions))
    for host in hosts:  # startup: every session once (as a daemon's first reconcile)
        await asyncio.gather(*(kv.put(session_key(host.name, s.id), host.value(i))
                               for i, s in enumerate(host.sessions)))
    start = time.monotonic()
    beats = refreshes = changes = 0
    while not stop.is_set():
        now = time.monotonic() - start
        puts = []
        if now >= beats * DEFAULTS.heartbeat:
            beats += 1
            puts += [kv.put(host_key(h.name), h.record()) for h in hosts]
        if now >= refreshes * refresh_step:  # one session per host, round the sessions
            index = refreshes % len(hosts[0].sessions)
            refreshes += 1
            puts += [kv.put(session_key(h.name, h.sessions[index].id), h.value(index)) for h in hosts]
        if now >= changes * change_every / len(hosts):  # spread over the hosts, one at a time
            host = hosts[changes % len(hosts)]
            changes += 1
            index = host.change_one()
            puts.append(kv.put(session_key(host.name, host.sessions[index].id), host.value(index)))
        if puts:
            await asyncio.gather(*puts)
        await asyncio.sleep(0.05)


def daemon_config(hosts: list[SimulatedHost], nats_url: str, seed_path: str) -> str:
    lines = ["", "[fleet]", 'host = "observer"', f'servers = ["{nats_url}"]', f'seed_file = "{seed_path}"',
             "", "[fleet.trusted_hosts]"]
    return "\n".join(lines + [f'{h.name} = "{h.key}"' for h in hosts]) + "\n"


async def measure(hosts: int, sessions: int, requests: int, window: float,
                  change_every: float) -> dict[str, Any]:
    simulated = [SimulatedHost(i, sessions) for i in range(hosts)]
    server: Nats = start_nats(1)
    node = server.nodes[0]
    seed = node.store.parent / "observer.seed"
    seed.write_bytes(new_seed() + b"\n")
    seed.chmod(0o600)
    daemon = make_daemon_dirs(daemon_config(simulated, node.url, str(seed)), backends='["fake"]')
    stop = asyncio.Event()
    client = await nats.connect(node.url, max_reconnect_attempts=0)
    try:
        daemon.start()
        kv = await _bucket(client)
        publisher = asyncio.create_task(publish(simulated, kv, change_every, stop))
        with daemon.client("/api/v1") as http:
            total = hosts * sessions
            listed = lambda: len(http.get("/fleet/sessions").json()) == total  # noqa: E731
            online = lambda: sum(h["online"] for h in http.get("/fleet/hosts").json()) == hosts + 1  # noqa: E731
            # (blocking probes, in a thread: the loop goes on publishing meanwhile)
            await asyncio.to_thread(wait_for, listed, 120, "the daemon to see the whole simulated fleet")
            await asyncio.to_thread(wait_for, online, 30, "every simulated host online")
            before, began = node.varz(), time.monotonic()
            await asyncio.sleep(window)
            after, seconds = node.varz(), time.monotonic() - began
            latencies = []
            for _ in range(requests):
                started = time.perf_counter()
                answer = await asyncio.to_thread(http.get, "/fleet/sessions")
                latencies.append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200 and len(answer.json()) == total, answer.status_code
        stop.set()
        await publisher
    except BaseException:
        print(daemon.log.read_text()[-3000:] if daemon.log.exists() else "no daemon log")
        raise
    finally:
        stop.set()
        await client.close()
        shutdown(daemon)
        server.stop()
    received = (after["in_bytes"] - before["in_bytes"]) / seconds
    sent = (after["out_bytes"] - before["out_bytes"]) / seconds
    return {
        "fleet_hosts": hosts,
        "fleet_sessions": hosts * sessions,
        "fleet_list_p50_ms": round(statistics.median(latencies), 1),
        "fleet_list_p99_ms": round(statistics.quantiles(latencies, n=100)[98], 1),
        "fleet_list_requests": requests,
        "fleet_bytes_per_host_s": round(received / hosts),
        "fleet_bytes_out_per_watcher_s": round(sent),
        "fleet_window_s": round(seconds, 1),
    }


async def _bucket(client: Any) -> KeyValue:
    js = client.jetstream(timeout=10)
    for _ in range(100):  # the daemon may be making it at the same moment
        try:
            return await js.key_value(DEFAULTS.bucket)
        except nats.js.errors.BucketNotFoundError:
            try:
                return await js.create_key_value(KeyValueConfig(
                    bucket=DEFAULTS.bucket, history=1, ttl=DEFAULTS.stale_after, storage=StorageType.FILE))
            except nats.js.errors.BadRequestError:
                await asyncio.sleep(0.1)
    raise RuntimeError("no bucket")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=50, help="sessions per host")
    parser.add_argument("--requests", type=int, default=200, help="fleet listings timed")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of traffic counted")
    parser.add_argument("--change-every", type=float, default=30.0,
                        help="seconds between two session changes on one host")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.hosts, args.sessions, args.requests, args.window,
                                  args.change_every))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key.ljust(width)}  {value}")
    merge(FLEET, figures)


if __name__ == "__main__":
    main()
