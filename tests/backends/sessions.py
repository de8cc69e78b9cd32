"""Shared by the tests of the session backends (tests/backends) and of the OS adapters
(tests/system): short runtime dirs, accounts, an Xvnc backend that ends what it started, a
tiny RFB client, ways to look at processes as the kernel sees them, and a few steps of
an Xvnc session (its windows, typing into it).

The fixtures are imported by each folder's conftest.py, so tests name them as arguments."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from polydesk.backends.xvnc.backend import XvncBackend
from polydesk.core.model import Account, Role, Session, SessionState
from polydesk.system import processes
from tests import harness
from tests.harness import TestUser, create_user, remove_with_processes, scratch_dir
from tests.rfb import RfbClient

if shutil.which("Xvnc") is None:  # a missing install is a failure, never a skip
    pytest.exit("TigerVNC's Xvnc is not installed: run scripts/install --test", returncode=3)


# ---------------------------------------------------------------- processes


def live_pids(uid: int) -> list[int]:
    """Processes of ``uid`` that still run. Zombies are dead, only unreaped (and on this
    machine PID 1 reaps no orphans), so they do not count."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(FileNotFoundError):
                if os.stat(f"/proc/{entry}").st_uid == uid and processes.is_running(int(entry)):
                    found.append(int(entry))
    return found


def command_of(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


# ---------------------------------------------------------------- accounts


def account_of(user: TestUser) -> Account:
    return Account(user.name, user.uid, user.gid, user.home, "/bin/bash")


def write_xsession(user: TestUser, script: str) -> None:
    """Give ``user`` an executable ~/.xsession running ``script`` in sh."""
    harness.write_xsession(user, "#!/bin/sh\n" + script)


@pytest.fixture
def account() -> Iterator[Callable[[str], TestUser]]:
    """Real ``pdt-`` accounts; afterwards every live process of theirs is killed (by pid)
    and the account removed, even when the test failed."""
    made: list[TestUser] = []

    def make(stem: str = "backend") -> TestUser:
        user = create_user(stem)
        made.append(user)
        return user

    yield make
    for user in made:
        remove_with_processes(user)


# ---------------------------------------------------------------- backend and sessions


@pytest.fixture
def runtime_dir() -> Iterator[Path]:
    """Short (socket paths are limited to 107 bytes) and traversable by the test users."""
    path = scratch_dir("pdh-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class Sessions:
    """Start sessions on real XvncHosts; whatever is still running at the end is ended."""

    runtime_dir: Path
    backends: list[XvncBackend] = field(default_factory=list)
    started: list[Session] = field(default_factory=list)
    _next: int = 0

    def backend(self, tracking: str = "auto", **options: object) -> XvncBackend:
        backend = XvncBackend(self.runtime_dir, tracking=tracking, **options)  # type: ignore[arg-type]
        self.backends.append(backend)
        return backend

    async def start(self, user: TestUser, backend: XvncBackend | None = None) -> Session:
        backend = backend or (self.backends[0] if self.backends else self.backend())
        self._next += 1
        # Unique per test run: cgroups and markers are machine-wide.
        session_id = f"t{os.getpid()}-{self._next}-{os.urandom(2).hex()}"
        started = await backend.start(session_id, account_of(user))
        session = Session(
            id=session_id, user=user.name, uid=user.uid, role=Role.STANDARD, backend=backend.name,
            state=SessionState.ACTIVE, logon_time=time.time(), display=started.display,
            backend_data=started.data,
        )
        self.started.append(session)
        return session


@pytest.fixture
async def sessions(runtime_dir: Path) -> AsyncIterator[Sessions]:
    made = Sessions(runtime_dir)
    yield made
    cleaner = made.backends[0] if made.backends else XvncBackend(runtime_dir, tracking="marker")
    for session in made.started:
        await cleaner.end(session, kill_after=0)
    for backend in made.backends:
        await backend.close()


# ---------------------------------------------------------------- a tiny RFB client


@pytest.fixture
def rfb() -> Iterator[Callable[[str], RfbClient]]:
    clients: list[RfbClient] = []

    def connect(path: str) -> RfbClient:
        client = RfbClient(path)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


# ---------------------------------------------------------------- steps of an Xvnc session


def data(session: Session, key: str) -> str:
    return str(session.backend_data[key])


async def windows(backend: XvncBackend, session: Session, at_least: int = 1) -> None:
    async def count() -> int:
        return await backend.open_windows(session)

    deadline = time.monotonic() + 10
    while await count() < at_least:
        assert time.monotonic() < deadline, "the desktop's windows never appeared"
        await asyncio.sleep(0.1)


async def typing_reaches_the_shell(client: RfbClient, user: TestUser, name: str, timeout: float) -> bool:
    """Type a command into the focused xterm; True if the file it makes appears."""
    marker = Path(user.home) / name
    client.type(f"touch {name}\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if marker.exists():
            return True
        await asyncio.sleep(0.05)
    return False


async def typing_session(sessions: Sessions, user: TestUser,
                         rfb: Callable[[str], RfbClient]) -> tuple[XvncBackend, Session, RfbClient]:
    """A session of ``user`` with a focused xterm, and an RFB client whose typing reaches its shell."""
    write_xsession(user, "exec openbox --startup 'xterm -e sh'\n")
    backend = sessions.backend()
    session = await sessions.start(user, backend)
    await windows(backend, session)
    await asyncio.sleep(0.5)  # the window manager gives the new xterm the focus
    client = rfb(data(session, "rfb_socket"))
    assert await typing_reaches_the_shell(client, user, "before", 5)
    return backend, session, client
