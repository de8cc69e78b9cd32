"""A simulated fleet: hosts that publish into the bucket exactly what a daemon publishes, with its
default timings, without a daemon each. bench/fleet.py measures a real daemon watching a thousand
of them; the fleet page's tests show it a few hundred."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from typing import Any

import nats
import nats.js.errors
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from polydesk.config.fleet import FleetSettings
from polydesk.core.events import public_session
from polydesk.core.model import Role, Session, SessionState
from polydesk.fleet.node import host_record
from polydesk.fleet.wire import Signer, host_key, new_seed, session_key

DEFAULTS = FleetSettings()


class SimulatedHost:
    def __init__(self, number: int, sessions: int) -> None:
        self.name = f"sim{number:03d}"
        self.key = Signer(new_seed()).public_key
        self.started = time.time()
        self.sessions = [Session(
            id=str(i + 1), user=f"student{number:03d}{i:02d}", uid=20000 + i, role=Role.STANDARD,
            backend="xvnc", state=SessionState.ACTIVE, logon_time=self.started - random.uniform(0, 3600),
            display=f":{10 + i}", client=f"10.1.{number % 256}.{i + 1}",
        ) for i in range(sessions)]
        self.dead = False  # killed: publishes nothing more, says no goodbye
        self.last_beat = 0.0  # time.monotonic() of its last heartbeat put

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


async def publish_sessions(hosts: list[SimulatedHost], kv: KeyValue) -> None:
    """Every session once, as a daemon's first reconcile does."""
    for host in hosts:
        await asyncio.gather(*(kv.put(session_key(host.name, s.id), host.value(i))
                               for i, s in enumerate(host.sessions)))


async def publish(hosts: list[SimulatedHost], kv: KeyValue, change_every: float, stop: asyncio.Event,
                  heartbeat: float = DEFAULTS.heartbeat) -> None:
    """Every living simulated host, with a daemon's timings, until ``stop``: a heartbeat every
    ``heartbeat`` s, each session again every third of stale_after (one at a time, spread evenly),
    and one session of each host changing every ``change_every`` s. Real daemons start at
    different moments, so each host keeps its own phase: the fleet's puts are spread over time,
    not sent by all hosts at the same instant."""
    await publish_sessions(hosts, kv)
    refresh_step = DEFAULTS.stale_after / 3 / max(1, len(hosts[0].sessions))
    phases = {h.name: number / len(hosts) for number, h in enumerate(hosts)}  # a fraction of a period
    next_beat = {h.name: phases[h.name] * heartbeat for h in hosts}
    next_refresh = {h.name: phases[h.name] * refresh_step for h in hosts}
    refreshed = dict.fromkeys(next_refresh, 0)
    start = time.monotonic()
    changes = 0
    while not stop.is_set():
        now = time.monotonic() - start
        puts: list[Any] = []
        for host in hosts:
            if host.dead:
                continue
            if now >= next_beat[host.name]:
                next_beat[host.name] += heartbeat
                puts.append(kv.put(host_key(host.name), host.record()))
                host.last_beat = time.monotonic()
            if now >= next_refresh[host.name]:  # one session, round the host's sessions
                next_refresh[host.name] += refresh_step
                index = refreshed[host.name] % len(host.sessions)
                refreshed[host.name] += 1
                puts.append(kv.put(session_key(host.name, host.sessions[index].id), host.value(index)))
        if change_every and now >= changes * change_every / len(hosts):  # spread over the hosts
            host = hosts[changes % len(hosts)]
            changes += 1
            if not host.dead:
                index = host.change_one()
                puts.append(kv.put(session_key(host.name, host.sessions[index].id), host.value(index)))
        if puts:
            await asyncio.gather(*puts)
        await asyncio.sleep(0.02)


def daemon_config(hosts: list[SimulatedHost], nats_url: str, seed_path: str, name: str = "observer") -> str:
    """The [fleet] table of a daemon that trusts every simulated host."""
    lines = ["", "[fleet]", f'host = "{name}"', f'servers = ["{nats_url}"]', f'seed_file = "{seed_path}"',
             "", "[fleet.trusted_hosts]"]
    return "\n".join(lines + [f'{h.name} = "{h.key}"' for h in hosts]) + "\n"


async def bucket(client: Any) -> KeyValue:
    """The fleet's bucket, made here if the daemon has not made it yet."""
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


class Publishing:
    """``with Publishing(hosts, url):`` the simulated hosts publish, from a thread of their own, while
    a synchronous test (Playwright's) looks at the daemon; they stop and the thread ends on leaving."""

    def __init__(self, hosts: list[SimulatedHost], url: str) -> None:
        self.hosts, self.url = hosts, url
        self._started = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="simulated-fleet", daemon=True)

    def __enter__(self) -> Publishing:
        self._thread.start()
        self._started.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # raised in the test's thread on leaving
            self._error = exc
        finally:
            self._started.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        client = await nats.connect(self.url, max_reconnect_attempts=0)
        try:
            await publish(self.hosts, await bucket(client), 0, self._stop)
        finally:
            await client.close()


def run(hosts: list[SimulatedHost], url: str, change_every: float, last_beat: Any = None) -> None:
    """Publish as ``hosts`` until this process is ended: the bench runs the simulated fleet in
    processes of its own, so that its puts do not share a core and a GIL with the measuring
    client, and kills one by pid as a host dies. ``last_beat`` (a shared double): the
    time.monotonic() of the last heartbeat put."""

    async def main() -> None:
        client = await nats.connect(url, max_reconnect_attempts=0)
        stop = asyncio.Event()
        try:
            task = asyncio.create_task(publish(hosts, await bucket(client), change_every, stop))
            while not task.done():
                if last_beat is not None:
                    last_beat.value = max(h.last_beat for h in hosts)
                await asyncio.sleep(0.05)
            await task
        finally:
            await client.close()

    asyncio.run(main())
