"""A simulated fleet on a real nats-server, seen through a real daemon's API.

    python -m bench.fleet [--hosts 100] [--sessions 50] [--requests 200] [--window 30]

Starts nats-server (JetStream, loopback ports, a temporary store) and one real
daemon in fleet mode (the in-memory backend, fake; it trusts every simulated
host's key). Then N simulated hosts (tests/fleet/simulated.py) publish into the
bucket exactly what a daemon publishes, with its default timings, each host at
its own phase: a heartbeat (the host's record) every 2 s, every session once at
start, each session again every third of stale_after (one at a time), and some
activity: one session of each host changes every ``--change-every`` seconds.
They publish from processes of their own (one for the fleet, one for the host
that is killed), so the measuring client here has its own GIL. Measured, while
the hosts keep publishing:

- fleet_list_p50_ms / fleet_list_p99_ms: GET /api/v1/fleet/sessions (all N x M
  sessions, a JSON list) through the daemon's Unix socket, ``--requests``
  sequential requests;
- fleet_page_p99_ms: the paged and filtered list (limit 500), over every kind
  below, and fleet_page_<kind>_p99_ms for each: the first page (first), a walk
  through every page by cursor (cursor), one host (host), a search for one user
  on the last host (search), a search matching every session (search_all), a
  state (state); ``--page-requests`` of each kind (the walk: its pages);
- fleet_daemon_rss_mb: the daemon's resident memory with every session mirrored,
  after the listings;
- fleet_bytes_per_host_s: what one host sends to NATS per second, from the
  server's own count of bytes received (/varz in_bytes) over ``--window``
  seconds, divided by the hosts (the daemon's own beats are a rounding error);
- fleet_bytes_out_per_watcher_s: what the server sends per second over the same
  window (to the daemon's watcher, which sees every host, plus the put acks);
- fleet_offline_s: one simulated host is killed (SIGKILL to its process: no
  goodbye); seconds from then until /api/v1/fleet/hosts shows it offline
  (fleet_offline_since_beat_s: from its last heartbeat).

Prints a table and merges the figures into bench/results/fleet.json.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import statistics
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

import httpx
import nats
import psutil

from bench.results import FLEET, merge
from polydesk.fleet.wire import new_seed
from tests.fleet.simulated import SimulatedHost, bucket, daemon_config, run
from tests.harness import Nats, make_daemon_dirs, shutdown, start_nats, wait_for


def p99(latencies: list[float]) -> float:
    return round(statistics.quantiles(latencies, n=100)[98], 1) if len(latencies) > 1 else round(
        latencies[0], 1)


def timed(http: httpx.Client, path: str, params: dict[str, Any] | None = None) -> tuple[float, Any]:
    started = time.perf_counter()
    answer = http.get(path, params=params)
    elapsed = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, (answer.status_code, answer.text[:300])
    return elapsed, answer


def paged(http: httpx.Client, hosts: list[SimulatedHost], total: int,
          requests: int) -> dict[str, list[float]]:
    """The paged and filtered list, each kind ``requests`` times; the answers are checked."""
    far = hosts[-1]
    kinds: dict[str, Callable[[], dict[str, Any]]] = {
        "first": lambda: {"limit": 500},
        "host": lambda: {"host": hosts[len(hosts) // 2].name, "limit": 500},
        "search": lambda: {"q": far.sessions[-1].user, "limit": 500},
        "search_all": lambda: {"q": "10.1.", "limit": 500},
        "state": lambda: {"state": "disconnected", "limit": 500},
    }
    times: dict[str, list[float]] = {kind: [] for kind in kinds}
    for _ in range(requests):
        for kind, params in kinds.items():
            elapsed, answer = timed(http, "/fleet/sessions", params())
            times[kind].append(elapsed)
            page = answer.json()
            if kind == "search":
                assert [s["id"] for s in page["sessions"]] == [f"{far.name}/{far.sessions[-1].id}"], page
            if kind in ("first", "search_all"):
                assert len(page["sessions"]) == 500 and page["total"] == total, page["total"]
    times["cursor"] = []
    cursor, seen = None, 0
    while len(times["cursor"]) < max(requests, 2):
        following = {"cursor": cursor} if cursor else {}
        elapsed, answer = timed(http, "/fleet/sessions", {"limit": 500, **following})
        times["cursor"].append(elapsed)
        page = answer.json()
        seen += len(page["sessions"])
        cursor = page["next"]
        if cursor is None:
            assert seen == total, (seen, total)
            seen = 0
    return times


async def offline_seconds(http: httpx.Client, victim: SimulatedHost, process: BaseProcess,
                          last_beat: Any) -> tuple[float, float]:
    """Kill the process of ``victim``; (seconds until it shows offline, the same from its last
    heartbeat)."""
    def offline() -> bool:
        shown = {h["name"]: h for h in http.get("/fleet/hosts").json()}
        return not shown[victim.name]["online"]

    assert process.pid is not None
    os.kill(process.pid, signal.SIGKILL)
    killed = time.monotonic()
    while not await asyncio.to_thread(offline):  # polled every 0.1 s: the figure is that fine
        if time.monotonic() - killed > 60:
            raise RuntimeError(f"host {victim.name} still shows online a minute after it was killed")
        await asyncio.sleep(0.1)
    seen = time.monotonic()
    return seen - killed, seen - float(last_beat.value)


async def measure(hosts: int, sessions: int, requests: int, page_requests: int, window: float,
                  change_every: float) -> dict[str, Any]:
    simulated = [SimulatedHost(i, sessions) for i in range(hosts)]
    server: Nats = start_nats(1)
    node = server.nodes[0]
    seed = node.store.parent / "observer.seed"
    seed.write_bytes(new_seed() + b"\n")
    seed.chmod(0o600)
    daemon = make_daemon_dirs(daemon_config(simulated, node.url, str(seed)), backends='["fake"]')
    client = await nats.connect(node.url, max_reconnect_attempts=0)
    # The simulated fleet publishes from processes of its own (one, and the host to be killed).
    spawn = multiprocessing.get_context("spawn")
    victim = simulated[len(simulated) // 3]
    last_beat = spawn.Value("d", 0.0)
    others = [h for h in simulated if h is not victim]
    fleet = [spawn.Process(target=run, args=(others, node.url, change_every)),
             spawn.Process(target=run, args=([victim], node.url, change_every, last_beat))]
    try:
        daemon.start()
        await bucket(client)
        for process in fleet:
            process.start()
        with daemon.client("/api/v1") as http:
            total = hosts * sessions
            listed = lambda: len(http.get("/fleet/sessions").json()) == total  # noqa: E731
            online = lambda: sum(h["online"] for h in http.get("/fleet/hosts").json()) == hosts + 1  # noqa: E731
            # (blocking probes, in a thread: the loop goes on publishing meanwhile)
            await asyncio.to_thread(wait_for, listed, 300, "the daemon to see the whole simulated fleet")
            await asyncio.to_thread(wait_for, online, 60, "every simulated host online")
            before, began = node.varz(), time.monotonic()
            await asyncio.sleep(window)
            after, seconds = node.varz(), time.monotonic() - began
            latencies = []
            for _ in range(requests):
                elapsed, answer = await asyncio.to_thread(timed, http, "/fleet/sessions")
                latencies.append(elapsed)
                assert len(answer.json()) == total
            pages = await asyncio.to_thread(paged, http, simulated, total, page_requests)
            rss = psutil.Process(daemon.proc.pid).memory_info().rss if daemon.proc else 0
            offline, since_beat = await offline_seconds(http, victim, fleet[1], last_beat)
    except BaseException:
        print(daemon.log.read_text()[-3000:] if daemon.log.exists() else "no daemon log")
        raise
    finally:
        for process in fleet:
            if process.pid is not None:
                process.kill()
                process.join(10)
        await client.close()
        shutdown(daemon)
        server.stop()
    received = (after["in_bytes"] - before["in_bytes"]) / seconds
    sent = (after["out_bytes"] - before["out_bytes"]) / seconds
    every_page = [t for kind in pages.values() for t in kind]
    return {
        "fleet_hosts": hosts,
        "fleet_sessions": hosts * sessions,
        "fleet_list_p50_ms": round(statistics.median(latencies), 1),
        "fleet_list_p99_ms": p99(latencies),
        "fleet_list_requests": requests,
        "fleet_page_p50_ms": round(statistics.median(every_page), 1),
        "fleet_page_p99_ms": p99(every_page),
        **{f"fleet_page_{kind}_p99_ms": p99(times) for kind, times in pages.items()},
        "fleet_page_requests": len(every_page),
        "fleet_daemon_rss_mb": round(rss / 2**20, 1),
        "fleet_offline_s": round(offline, 1),
        "fleet_offline_since_beat_s": round(since_beat, 1),
        "fleet_bytes_per_host_s": round(received / hosts),
        "fleet_bytes_out_per_watcher_s": round(sent),
        "fleet_window_s": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=50, help="sessions per host")
    parser.add_argument("--requests", type=int, default=200, help="whole fleet listings timed")
    parser.add_argument("--page-requests", type=int, default=200, help="paged listings timed, of each kind")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of traffic counted")
    parser.add_argument("--change-every", type=float, default=30.0,
                        help="seconds between two session changes on one host")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.hosts, args.sessions, args.requests, args.page_requests, args.window,
                                  args.change_every))
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key.ljust(width)}  {value}")
    merge(FLEET, figures)


if __name__ == "__main__":
    main()
