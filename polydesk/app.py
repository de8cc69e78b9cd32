"""Composition root: builds settings, backends, store and manager, and runs the daemon.

Nothing else wires pieces together; tests build the same way with other settings.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import logging
import os
import signal
import time
from pathlib import Path
from typing import IO

from polydesk.backends.base import SessionBackend
from polydesk.config.settings import Settings
from polydesk.config.sizes import memory_size
from polydesk.core import i18n
from polydesk.core.events import EventBus
from polydesk.core.model import InvalidRequest, StoreError
from polydesk.manager.manager import Manager
from polydesk.manager.metrics import Metrics
from polydesk.manager.viewing import ScreenThumbnails
from polydesk.store.store import Store
from polydesk.system import memory, systemd
from polydesk.system.accounts import lookup_account
from polydesk.system.cgroups import Limits
from polydesk.thumbnails.feed import Thumbnailer

log = logging.getLogger("polydesk")


def build_backends(settings: Settings) -> list[SessionBackend]:
    backends: list[SessionBackend] = []
    for name in settings.backends:
        if name == "xvnc":
            from polydesk.backends.xvnc.backend import XvncBackend

            desktop = ["/bin/sh", "-c", settings.desktop] if settings.desktop else None
            backends.append(XvncBackend(
                runtime_dir=settings.runtime_path, desktop=desktop, geometry=settings.geometry,
                depth=settings.depth, first_display=settings.first_display,
                tracking=settings.process_tracking, limits=session_limits(settings),
            ))
        elif name == "logind":  # the sessions the OS already has: seats, display managers, SSH
            from polydesk.backends.logind.backend import LogindBackend

            backends.append(LogindBackend(runtime_dir=settings.runtime_path, bus=settings.logind_bus))
        elif name == "fake":  # in-memory sessions, for tests and demos of the interfaces
            from polydesk.backends.fake import FakeBackend

            backends.append(FakeBackend())
        else:
            raise InvalidRequest(f"unknown session backend {name!r} in setting 'backends'")
    return backends


def session_limits(settings: Settings) -> Limits:
    """Each session's share of the machine, from the session_* settings."""
    try:
        memory = memory_size(settings.session_memory_max)
    except ValueError as exc:
        raise InvalidRequest(f"setting 'session_memory_max': {exc}") from None
    if settings.session_max_processes < 0 or not 0 <= settings.session_cpu_weight <= 10000:
        raise InvalidRequest("settings 'session_max_processes' (0 or more) and 'session_cpu_weight' "
                             "(0 to 10000) are out of range")
    return Limits(pids_max=settings.session_max_processes, memory_max=memory,
                  cpu_weight=settings.session_cpu_weight)


def _lock_state_dir(state_dir: Path) -> IO[str]:
    """One daemon per state directory: a second one would fight over the sessions."""
    state_dir.mkdir(parents=True, exist_ok=True)
    lock = open(state_dir / "daemon.lock", "a+")  # noqa: SIM115 (held for the daemon's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StoreError(f"another polydesk daemon is running on {state_dir}") from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n")
    lock.flush()
    return lock


def open_store(settings: Settings, recover: bool) -> Store:
    """The state database, or a clear account of what is wrong with it.

    A damaged or missing database while sessions still run must not silently
    start afresh: those sessions would run on, unknown to the daemon. With
    ``recover`` the damaged file is kept aside and the state is rebuilt from
    the live sessions (Manager.recover).
    """
    path = settings.state_path / "polydesk.db"
    running = sorted(p.name for p in (settings.runtime_path / "sessions").glob("*/session.json"))
    hint = "start with `polydesk serve --recover` to rebuild the state from the running sessions"
    if not path.exists() and running and not recover:
        raise StoreError(f"state database {path} is missing but {len(running)} session(s) still "
                         f"run in {settings.runtime_path / 'sessions'}; {hint}")
    try:
        return Store(path)
    except StoreError as exc:
        if not recover:
            raise StoreError(f"{exc}; {hint} (the damaged file is kept aside)") from None
    aside = path.with_name(f"{path.name}.damaged-{int(time.time())}")
    for suffix in ("", "-wal", "-shm"):
        damaged = Path(f"{path}{suffix}")
        if damaged.exists():
            damaged.rename(Path(f"{aside}{suffix}"))
    log.warning("damaged state database moved to %s; rebuilding from the running sessions", aside)
    return Store(path)


async def run(settings: Settings, recover: bool = False) -> None:
    from polydesk.web import create_app
    from polydesk.web.server import make_servers, serve
    from polydesk.web.signin import FailureLimiter, SigninChecker

    if os.geteuid() != 0:
        raise InvalidRequest("polydesk serve must run as root: it starts sessions as other users")
    memory.limit_arenas()  # before any thread starts (system/memory.py says why)
    try:  # before anything shows text in a session
        log.info("server language: %s", i18n.set_server_language(settings.language))
    except ValueError as exc:
        raise InvalidRequest(f"setting 'language': {exc}") from None
    lock = _lock_state_dir(settings.state_path)
    settings.runtime_path.mkdir(parents=True, exist_ok=True)
    os.chmod(settings.runtime_path, 0o755)
    store = open_store(settings, recover)
    manager = Manager(build_backends(settings), store, EventBus(), settings, lookup_account)
    thumbnails = ScreenThumbnails(manager, Thumbnailer())  # this host's rules, for its web and the fleet
    fleet = None
    if settings.fleet is not None:  # a host of a fleet (fleet.py; nats is imported only then)
        from polydesk.fleet.node import FleetNode

        fleet = FleetNode(settings, manager, thumbnails=thumbnails.for_fleet)
    if recover:
        log.info("recovered sessions: %s", ", ".join(await manager.recover()) or "none")
    await manager.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    checker = SigninChecker(limiter=FailureLimiter(store), service=settings.pam_service)
    app = create_app(manager, settings, store, thumbnails, Metrics(store, thumbnails.feed), checker, fleet)
    if fleet is not None:
        await fleet.start()  # returns at once: joining the fleet goes on while this host serves
    servers = make_servers(app, settings)
    # What exists now lives as long as the daemon: keep it out of the collector's full passes,
    # which otherwise walk the whole FastAPI/pydantic heap (~90 ms each, the API's slowest answers).
    gc.collect()
    gc.freeze()
    snapshots = memory.snapshots_from_environment()  # a developer's switch: POLYDESK_TRACEMALLOC=DIR
    if snapshots is not None:
        snapshots.start()
    log.info("polydesk serving on %s and %s", settings.listen, settings.api_socket)
    # Under systemd (Type=notify): READY=1 once both listeners accept connections.
    ready = asyncio.create_task(systemd.notify_when_ready(
        servers, f"serving on {settings.listen} and {settings.api_socket}"))
    # Sessions come and go, pictures are made and dropped: what malloc keeps free goes back.
    trimming = asyncio.create_task(memory.give_back_every(memory.GIVE_BACK_EVERY_S))
    try:
        await serve(servers, settings.api_socket, stop)
    finally:
        ready.cancel()
        trimming.cancel()
        systemd.notify("STOPPING=1")
        if snapshots is not None:
            await snapshots.close()
        if fleet is not None:
            await fleet.close()  # the others see this host offline at once; its sessions run on
        await thumbnails.feed.close()  # stop capture loops and close their X connections
        await manager.close()  # sessions keep running; the next daemon re-adopts them
        store.close()
        lock.close()
