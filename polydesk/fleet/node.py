"""Fleet mode: this daemon as one host of a fleet, over NATS (JetStream key-value + request/reply).

``FleetNode`` does three things, each in its own task, all while the local host
goes on serving whatever NATS does:

- publishes: this host's record every ``heartbeat`` seconds (so the others can
  tell it is alive) and its sessions, one key each, as they change (the
  manager's events), all of them again after a reconnect, and each at least
  every third of ``stale_after`` so that live entries never expire;
- mirrors the bucket into memory (``state.FleetMirror``) for listing;
- answers signed requests for this host on ``<prefix>.cmd.<host>.<action>``
  (``answer.Answers``), and asks other hosts for FleetDesk (``request``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
import time
from pathlib import Path
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js.api import KeyValueConfig, StorageType
from nats.js.kv import KeyValue

from polydesk.config.fleet import FleetSettings
from polydesk.config.settings import Settings
from polydesk.core.events import Event, public_session
from polydesk.core.model import Caller, InvalidRequest, Role
from polydesk.fleet.answer import Answers, ThumbnailSource
from polydesk.fleet.desk import FleetDesk, HostUnreachable, caller_json
from polydesk.fleet.state import FleetMirror
from polydesk.fleet.wire import (
    NONCE,
    Forged,
    Signer,
    command_subject,
    host_key,
    load_or_make_seed,
    seal,
    session_key,
    unseal,
    verify_key,
)
from polydesk.manager.manager import Manager

log = logging.getLogger(__name__)

def host_record(name: str, public_key: str, listen: str, sessions: int, started: float,
                state: str = "online") -> bytes:
    """The value of a host's key: what the others show of it; its arrival is the heartbeat."""
    return json.dumps({"name": name, "state": state, "public_key": public_key, "listen": listen,
                       "sessions": sessions, "started": started, "time": time.time()}).encode()


class FleetNode:
    def __init__(self, settings: Settings, manager: Manager,
                 thumbnails: ThumbnailSource | None = None) -> None:
        """``thumbnails``: what this host answers other hosts' thumbnail requests with (app.py's)."""
        fleet = settings.fleet
        if fleet is None:
            raise InvalidRequest("fleet mode needs a [fleet] section")
        self.settings: FleetSettings = fleet
        self.name = fleet.host
        self.manager = manager
        self.request_timeout = fleet.request_timeout
        seed_path = Path(fleet.seed_file) if fleet.seed_file else settings.state_path / "fleet.seed"
        try:
            self.signer = Signer(load_or_make_seed(seed_path))
        except (OSError, ValueError) as exc:
            raise InvalidRequest(f"fleet seed {seed_path}: {exc}") from None
        trusted = dict(fleet.trusted_hosts)
        if trusted.setdefault(self.name, self.signer.public_key) != self.signer.public_key:
            raise InvalidRequest(f"fleet.trusted_hosts gives this host ({self.name}) another key than "
                                 f"its seed's, {self.signer.public_key}")
        self.keys = {host: verify_key(key) for host, key in trusted.items()}
        self.mirror = FleetMirror(self.name, trusted, fleet.offline_after, fleet.stale_after)
        self.desk = FleetDesk(self, manager)
        self.listen = settings.listen
        self._nc: Client | None = None
        self.answers = Answers(self.name, manager, self.signer, self.keys, lambda: self._nc, thumbnails)
        self._kv: KeyValue | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._published: dict[str, tuple[dict[str, Any], float]] = {}  # id -> (value, when put)
        self._republish = True  # everything again: at start, after a reconnect or a failed put
        self._connected = asyncio.Event()  # set while the NATS connection is up
        self._last_beat_ok: float | None = None
        self._started = time.time()
        self._stopping = False

    # lifecycle

    async def start(self) -> None:
        """Begin joining the fleet; returns at once (NATS may be down: the host serves anyway)."""
        log.info("fleet: host %s, public key %s", self.name, self.signer.public_key)
        self._tasks = [asyncio.create_task(self._run()), asyncio.create_task(self._follow_events())]
        for task in self._tasks:
            task.add_done_callback(_report_failure)

    async def close(self) -> None:
        """Say this host is going (its sessions keep running) and leave NATS."""
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.answers.close()
        if self._kv is not None and self._nc is not None and self._nc.is_connected:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._kv.put(host_key(self.name), self._host_record("offline")), 2)
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._nc.close(), 5)

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _run(self) -> None:
        self._nc = await self._connect()
        self._connected.set()
        self._kv = await self._bucket(self._nc)
        if await self._name_taken(self._nc):
            log.error("fleet: another daemon already answers as host %s; this one stays out of the "
                      "fleet (give it its own fleet.host)", self.name)
            return
        subject = command_subject(self.settings.subject_prefix, self.name, "*")
        await self._nc.subscribe(subject, cb=self.answers.on_request)
        await asyncio.gather(self._publish(), self._watch())

    async def _connect(self) -> Client:
        """Connected to one of the servers: retried (every second) until it works, then kept up."""
        fleet = self.settings
        options: dict[str, Any] = {}
        if fleet.credentials:
            options["user_credentials"] = fleet.credentials
        elif fleet.nkey_auth:
            options["nkeys_seed_str"] = self.signer.seed_text
        context = self._tls()
        if context is not None:
            options["tls"] = context
        errors: list[float] = []

        async def on_error(exc: Exception) -> None:
            now = time.monotonic()
            errors[:] = [t for t in errors if t > now - 60]
            if len(errors) < 5:  # a server that is down would log every second otherwise
                log.warning("fleet: NATS: %s", exc or type(exc).__name__)
            errors.append(now)

        async def on_disconnect() -> None:
            self._connected.clear()
            if not self._stopping:
                log.warning("fleet: disconnected from NATS; reconnecting")

        async def on_reconnect() -> None:
            self._connected.set()
            log.info("fleet: reconnected to NATS; publishing this host's sessions again")
            self._republish = True

        return await nats.connect(
            fleet.servers, name=f"polydesk {self.name}", error_cb=on_error,
            disconnected_cb=on_disconnect, reconnected_cb=on_reconnect, connect_timeout=2,
            reconnect_time_wait=1, max_reconnect_attempts=-1, ping_interval=5,
            max_outstanding_pings=2, **options,
        )

    def _tls(self) -> ssl.SSLContext | None:
        fleet = self.settings
        if not (fleet.tls_ca or fleet.tls_cert or any(u.startswith("tls://") for u in fleet.servers)):
            return None
        context = ssl.create_default_context(cafile=fleet.tls_ca or None)
        if fleet.tls_cert:
            context.load_cert_chain(fleet.tls_cert, fleet.tls_key)
        return context

    async def _bucket(self, nc: Client) -> KeyValue:
        """The bucket, made by the first host that finds none (a cluster may still be electing)."""
        js = nc.jetstream(timeout=5)
        while True:
            try:
                try:
                    return await js.key_value(self.settings.bucket)
                except nats.js.errors.BucketNotFoundError:
                    return await js.create_key_value(KeyValueConfig(
                        bucket=self.settings.bucket, history=1, ttl=self.settings.stale_after,
                        replicas=self.settings.replicas, storage=StorageType.FILE,
                        description="Polydesk fleet: hosts and their sessions"))
            except (nats.errors.Error, TimeoutError) as exc:
                log.warning("fleet: bucket %s not ready (%s); retrying", self.settings.bucket, exc)
                await asyncio.sleep(1)

    async def _name_taken(self, nc: Client) -> bool:
        subject = command_subject(self.settings.subject_prefix, self.name, "ping")
        body = json.dumps({"caller": caller_json(_NODE)}).encode()
        try:
            await nc.request(subject, body, timeout=1, headers=seal(self.signer, self.name, subject, body))
        except (nats.errors.NoRespondersError, nats.errors.TimeoutError):
            return False
        return True

    # publishing

    def _host_record(self, state: str = "online") -> bytes:
        return host_record(self.name, self.signer.public_key, self.listen, len(self._published),
                           self._started, state)

    async def _publish(self) -> None:
        refresh = self.settings.stale_after / 3
        kv = self._kv
        assert kv is not None
        while True:
            try:
                await self._reconcile(kv, refresh)
                await kv.put(host_key(self.name), self._host_record())
                self._last_beat_ok = time.monotonic()
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                self._republish = True  # what was missed goes again once NATS answers
                log.debug("fleet: heartbeat not published: %s", exc)
                if isinstance(exc, nats.js.errors.NoStreamResponseError) and self._nc is not None:
                    # No stream took the put: a cluster electing a leader, or a NATS that lost
                    # its store (redeployed). Then make the bucket again, and fill it again.
                    await self._bucket(self._nc)
            except Exception:  # never leave the fleet over one bad turn (a busy database ...)
                self._republish = True
                log.exception("fleet: publishing failed; trying again")
            await asyncio.sleep(self.settings.heartbeat)

    async def _reconcile(self, kv: KeyValue, refresh: float) -> None:
        """Make the bucket say what the store says: changed or due sessions put, ended ones deleted."""
        force, self._republish = self._republish, False
        try:
            now = time.monotonic()
            current = {s.id: public_session(s) for s in self.manager.stored_sessions()}
            for session_id, value in current.items():
                put = self._published.get(session_id)
                if force or put is None or put[0] != value or now - put[1] > refresh:
                    await kv.put(session_key(self.name, session_id), json.dumps(value).encode())
                    self._published[session_id] = (value, now)
            # Also the keys a previous run of this host left, for sessions that ended meanwhile.
            for session_id in (set(self._published) | self.mirror.session_ids(self.name)) - set(current):
                await kv.delete(session_key(self.name, session_id))
                self._published.pop(session_id, None)
        except BaseException:
            self._republish = True
            raise

    async def _follow_events(self) -> None:
        """Sessions as they change, at once (the heartbeat's reconcile catches anything missed)."""
        async with self.manager.events() as queue:
            while True:
                event = await queue.get()
                try:
                    await self._publish_event(event)
                except Exception as exc:  # the next heartbeat's reconcile publishes it
                    log.debug("fleet: event %s not published: %s", event.kind, exc)

    async def _publish_event(self, event: Event) -> None:
        kv = self._kv
        if kv is None or not self.connected:
            self._republish = True
            return
        key = session_key(self.name, event.session_id)
        try:
            if event.kind == "session-ended":
                await kv.delete(key)
                self._published.pop(event.session_id, None)
            elif event.kind in ("session-started", "session-changed") and event.session is not None:
                await kv.put(key, json.dumps(event.session).encode())
                self._published[event.session_id] = (event.session, time.monotonic())
        except BaseException:
            self._republish = True
            raise

    # mirroring

    async def _watch(self) -> None:
        """Follow the bucket; start over (a full resync) if this host's own heartbeats stop coming back."""
        kv = self._kv
        assert kv is not None
        while True:
            try:
                watcher = await kv.watchall()
            except (nats.errors.Error, TimeoutError) as exc:
                log.debug("fleet: cannot watch the bucket yet: %s", exc)
                await asyncio.sleep(1)
                continue
            try:
                await self._follow(watcher)
            except (nats.errors.Error, TimeoutError, OSError) as exc:
                log.warning("fleet: watching the bucket failed (%s); watching it anew", exc)
                await asyncio.sleep(1)
            except Exception:
                log.exception("fleet: watching the bucket failed; watching it anew")
                await asyncio.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    await watcher.stop()  # type: ignore[no-untyped-call]

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        self.mirror.begin_resync()
        began = expired = time.monotonic()
        in_snapshot = True
        while True:
            try:
                entry = await watcher.updates(timeout=self.settings.heartbeat)  # type: ignore[no-untyped-call]
                quiet = False
            except nats.errors.TimeoutError:
                entry, quiet = None, True
            if entry is None:
                # The end of the initial snapshot (or, failing its marker, a long silence).
                if in_snapshot and (not quiet or time.monotonic() - began > 10):
                    self.mirror.end_resync()
                    in_snapshot = False
            else:
                deleted = entry.operation in ("DEL", "PURGE")
                # Entries replayed (the snapshot, or a catch-up after a reconnect) are dated by the
                # server; live ones by their arrival, which no clock difference can skew.
                created = entry.created.timestamp() if entry.created and (
                    in_snapshot or (entry.delta or 0) > 0) else None
                self.mirror.apply(entry.key, None if deleted else entry.value, created)
            # A pass over every entry (50,000 at 1,000 hosts: ~10 ms of the loop), so not for each
            # update, nor each second: a tenth of stale_after is precise enough for entries that
            # live 15 minutes (liveness is judged apart, from the heartbeats' age).
            if time.monotonic() - expired >= min(10.0, self.settings.stale_after / 10):
                self.mirror.expire()
                expired = time.monotonic()
            if self._watch_stalled(began):
                log.warning("fleet: this host's heartbeats stopped coming back; watching the bucket anew")
                return

    def _watch_stalled(self, began: float) -> bool:
        beat = self._last_beat_ok
        seen = self.mirror.seen_at(self.name)
        limit = self.settings.offline_after
        return (beat is not None and time.monotonic() - began > limit
                and (seen is None or beat - seen > limit))

    # asking other hosts (FleetDesk's Link)

    async def request(self, host: str, action: str, body: dict[str, Any],
                      timeout: float) -> tuple[dict[str, Any], bytes]:
        nc = self._nc
        # A NATS node restarting moves this host to another within a second or two: a command
        # given meanwhile waits for that rather than failing (up to its own timeout).
        deadline = time.monotonic() + timeout
        if nc is not None and not nc.is_connected and not nc.is_closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._connected.wait(), timeout)
        if nc is None or not nc.is_connected:
            raise HostUnreachable(f"host {host} cannot be reached: this host is not connected to NATS")
        timeout = max(0.5, deadline - time.monotonic())
        subject = command_subject(self.settings.subject_prefix, host, action)
        data = json.dumps(body).encode()
        headers = seal(self.signer, self.name, subject, data)
        try:
            reply = await nc.request(subject, data, timeout=timeout, headers=headers)
        except nats.errors.NoRespondersError:
            raise HostUnreachable(f"host {host} is offline (no daemon answers for it)") from None
        except nats.errors.TimeoutError:
            raise HostUnreachable(f"host {host} did not answer within {timeout:g} s") from None
        except nats.errors.Error as exc:
            raise HostUnreachable(f"host {host} cannot be reached: {exc}") from None
        try:
            opened = unseal(self.keys, reply.subject, reply.headers, reply.data)
        except Forged as exc:
            raise HostUnreachable(f"the answer from host {host} was not believed: {exc}") from None
        if opened.sender != host or opened.nonce != headers[NONCE]:
            raise HostUnreachable(f"the answer from host {host} was not believed: it answers another "
                                  "request or comes from another host")
        return opened.meta, reply.data


def _report_failure(task: asyncio.Task[None]) -> None:
    """A fleet task that dies takes this host out of the fleet: say so, loudly."""
    if not task.cancelled() and task.exception() is not None:
        log.error("fleet: this host left the fleet after an error", exc_info=task.exception())


_NODE = Caller(user="polydesk", uid=0, role=Role.ADMIN, via="system")
