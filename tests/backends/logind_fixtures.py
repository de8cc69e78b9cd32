"""logind on a private bus, for the logind backend's tests.

systemd-logind cannot run on this machine (no systemd as PID 1), so logind is
python-dbusmock's ``logind`` template (a library that is not ours) on a private
``dbus-daemon``: the real D-Bus protocol, never the machine's system bus. Beside it,
a real Xvfb display stands for an X11 session's screen, and a real process with
DISPLAY and XAUTHORITY in its environment stands for the session's leader.

The template's sessions are inert; two of its methods are given logind's
behaviour (``TerminateSession`` removes the session and emits ``SessionRemoved``),
and sessions are announced with ``SessionNew`` as logind does.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dbus_fast import Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from polydesk.system.x11 import xauth
from tests.users import TestUser

T = TypeVar("T")
DEBIAN_PYTHON = "/usr/bin/python3"  # dbusmock runs on Debian's python3-dbus, not in our venv
LOGIN1 = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER = "org.freedesktop.login1.Manager"
SESSION = "org.freedesktop.login1.Session"
MOCK = "org.freedesktop.DBus.Mock"
SESSION_PATH = "/org/freedesktop/login1/session/"

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>custom</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"""

# logind's own behaviour for the calls that end a session: gone, and said so.
TERMINATE = """
path = '/org/freedesktop/login1/session/' + args[0]
if path not in objects:
    raise dbus.exceptions.DBusException('No session ' + args[0], name='org.freedesktop.login1.NoSuchSession')
self.RemoveObject(path)
self.EmitSignal('org.freedesktop.login1.Manager', 'SessionRemoved', 'so', [args[0], dbus.ObjectPath(path)])
"""
# A session that outlives TerminateSession (logind waits for the scope to stop).
INERT = """
if '/org/freedesktop/login1/session/' + args[0] not in objects:
    raise dbus.exceptions.DBusException('No session ' + args[0], name='org.freedesktop.login1.NoSuchSession')
"""

for tool in ("dbus-daemon", "Xvfb", "xsetroot", DEBIAN_PYTHON):
    if shutil.which(tool) is None:  # a missing install is a failure, never a skip
        pytest.exit(f"{tool} is not installed: run scripts/install --test", returncode=3)


def _stop(proc: subprocess.Popen[Any]) -> None:
    """End one process we started, by its pid, and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- the bus and the mock


class LoopThread:
    """An asyncio loop of its own, so sync and async tests alike can drive the mock."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@dataclass
class MockLogind:
    """A private dbus-daemon with python-dbusmock's logind template on it."""

    base: Path
    address: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _loop: LoopThread | None = None
    _bus: MessageBus | None = None

    @property
    def log(self) -> Path:
        return self.base / "mock.log"

    def start(self, with_logind: bool = True) -> None:
        """The bus, and (unless ``with_logind`` is False: a bus without logind) the mock on it."""
        socket = self.base / "bus"
        config = self.base / "bus.conf"
        config.write_text(BUS_CONFIG.format(socket=socket))
        daemon = subprocess.Popen(
            ["dbus-daemon", f"--config-file={config}", "--nofork", "--print-address=1"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(daemon)
        assert daemon.stdout is not None
        self.address = daemon.stdout.readline().decode().strip()
        daemon.stdout.close()
        assert self.address.startswith("unix:"), "dbus-daemon printed no address"
        self._loop = LoopThread()
        self._bus = self._loop.run(self._connect())
        if with_logind:
            self._start_mock()

    def _start_mock(self) -> None:
        env = {"PATH": "/usr/bin:/bin", "DBUS_SYSTEM_BUS_ADDRESS": self.address, "LANG": "C.UTF-8"}
        with open(self.base / "mock.err", "wb") as err:
            self.procs.append(subprocess.Popen(
                [DEBIAN_PYTHON, "-m", "dbusmock", "--system", "--template", "logind", "-l", str(self.log)],
                env=env, stdout=subprocess.DEVNULL, stderr=err))
        deadline = time.monotonic() + 20
        while not self._dbus("NameHasOwner", "s", [LOGIN1])[0]:
            if self.procs[-1].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"dbusmock did not start: {(self.base / 'mock.err').read_text()}")
            time.sleep(0.05)
        self.set_method("TerminateSession", "s", TERMINATE)

    async def _connect(self) -> MessageBus:
        return await MessageBus(bus_address=self.address).connect()  # made in the loop it uses

    def stop(self) -> None:
        if self._loop is not None:
            if self._bus is not None:
                self._bus.disconnect()
            self._loop.close()
        for proc in reversed(self.procs):
            _stop(proc)

    # calls

    def call(self, path: str, interface: str, member: str, signature: str = "",
             body: list[Any] | None = None, destination: str = LOGIN1) -> list[Any]:
        assert self._loop is not None and self._bus is not None
        message = Message(destination=destination, path=path, interface=interface, member=member,
                          signature=signature, body=body or [])
        reply = self._loop.run(self._bus.call(message))
        if reply.message_type == MessageType.ERROR:
            raise RuntimeError(f"{member}: {reply.error_name}: {reply.body}")
        return list(reply.body)

    def _dbus(self, member: str, signature: str, body: list[Any]) -> list[Any]:
        return self.call("/org/freedesktop/DBus", "org.freedesktop.DBus", member, signature, body,
                         destination="org.freedesktop.DBus")

    def set_method(self, name: str, signature: str, code: str) -> None:
        """Give a logind Manager method a body (the template's are no-ops)."""
        self.call(MANAGER_PATH, MOCK, "AddMethod", "sssss", [MANAGER, name, signature, "", code])

    def calls(self, method: str) -> list[list[Any]]:
        """The arguments of every call of ``method`` on logind's Manager, oldest first."""
        log = self.call(MANAGER_PATH, MOCK, "GetCalls")[0]
        return [[arg.value for arg in args] for _, name, args in log if name == method]

    def called_ids(self, method: str) -> list[str]:
        return [str(args[0]) for args in self.calls(method)]

    def clear_calls(self) -> None:
        self.call(MANAGER_PATH, MOCK, "ClearCalls")

    # sessions

    def add_session(self, user: TestUser, *, session_id: str | None = None, type: str = "x11",
                    seat: str = "seat0", tty: str = "", display: str = "", leader: int = 0,
                    remote: bool = False, remote_host: str = "", service: str = "gdm-password",
                    session_class: str = "user", announce: bool = True) -> str:
        """A session as logind would have it, announced with SessionNew; its logind id."""
        session_id = session_id or f"c{secrets.randbelow(10**6)}"
        path = SESSION_PATH + session_id
        self.call(MANAGER_PATH, MOCK, "AddSession", "ssusb", [session_id, seat or "seat0", user.uid,
                                                              user.name, True])
        props: dict[str, Variant] = {
            "Type": Variant("s", type), "TTY": Variant("s", tty), "Display": Variant("s", display),
            "Leader": Variant("u", leader), "Remote": Variant("b", remote),
            "RemoteHost": Variant("s", remote_host), "Service": Variant("s", service),
            "Class": Variant("s", session_class),
            "Timestamp": Variant("t", int(time.time() * 1e6)),
        }
        if not seat:  # SSH sessions have no seat
            props["Seat"] = Variant("(so)", ["", "/"])
        for name, value in props.items():
            self.call(path, "org.freedesktop.DBus.Properties", "Set", "ssv", [SESSION, name, value])
        if announce:
            self.announce(session_id)
        return session_id

    def announce(self, session_id: str) -> None:
        self.call(MANAGER_PATH, MOCK, "EmitSignal", "sssav",
                  [MANAGER, "SessionNew", "so", [Variant("s", session_id),
                                                 Variant("o", SESSION_PATH + session_id)]])

    def remove_session(self, session_id: str) -> None:
        """The user logged out by themselves: logind drops the session and says so."""
        path = SESSION_PATH + session_id
        self.call(MANAGER_PATH, MOCK, "RemoveObject", "s", [path])
        self.call(MANAGER_PATH, MOCK, "EmitSignal", "sssav",
                  [MANAGER, "SessionRemoved", "so", [Variant("s", session_id), Variant("o", path)]])

    def set_property(self, session_id: str, name: str, value: Variant) -> None:
        self.call(SESSION_PATH + session_id, "org.freedesktop.DBus.Properties", "Set", "ssv",
                  [SESSION, name, value])

    def has_session(self, session_id: str) -> bool:
        rows = self.call(MANAGER_PATH, MANAGER, "ListSessions")[0]
        return any(row[0] == session_id for row in rows)


@contextlib.contextmanager
def private_bus(with_logind: bool = True) -> Iterator[MockLogind]:
    base = Path(tempfile.mkdtemp(prefix="pdl-bus-"))
    base.chmod(0o755)
    mock = MockLogind(base)
    try:
        mock.start(with_logind)
        yield mock
    finally:
        mock.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def logind() -> Iterator[MockLogind]:
    with private_bus() as mock:
        yield mock


# ---------------------------------------------------------------- an X11 session's screen


@dataclass
class XScreen:
    """A real Xvfb display, its cookie in a file the user owns, and a leader process."""

    display: str
    xauthority: Path  # the user's cookie file (what the leader's XAUTHORITY names)
    leader: int


@dataclass
class Screens:
    base: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def xvfb(self, user: TestUser, colour: str = "#c03020", args: tuple[str, ...] = ()) -> XScreen:
        """Xvfb with a root window painted ``colour``, and a ``sleep`` of ``user`` with
        DISPLAY and XAUTHORITY in its environment (the session leader logind would name)."""
        cookie = xauth.new_cookie()
        server_auth = self.base / f"server-{len(self.procs)}"
        read, write = os.pipe()
        server_auth.write_bytes(xauth.xauthority_bytes(0, cookie))  # the server takes every entry
        xvfb = subprocess.Popen(
            ["Xvfb", "-displayfd", str(write), "-auth", str(server_auth), "-nolisten", "tcp", "-noreset",
             "-screen", "0", "640x400x24", *args],
            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(xvfb)
        os.close(write)
        with os.fdopen(read) as pipe:
            number = int(pipe.readline().strip())
        display = f":{number}"
        home = Path(user.home)
        xauthority = home / f".Xauthority-pdl-{number}"
        xauthority.unlink(missing_ok=True)
        xauth.write_xauthority(xauthority, number, cookie, user.uid, user.gid)
        env = {"PATH": "/usr/bin:/bin", "DISPLAY": display, "XAUTHORITY": str(xauthority),
               "HOME": user.home, "USER": user.name}
        subprocess.run(["xsetroot", "-solid", colour], env=env, check=True, timeout=20)
        leader = subprocess.Popen(["sleep", "10000"], env=env, user=user.uid, group=user.gid,
                                  cwd="/", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(leader)
        return XScreen(display, xauthority, leader.pid)

    def process(self, user: TestUser, name: str = "sleep", env: dict[str, str] | None = None) -> int:
        """A plain process of ``user`` (a text session's leader); ``name`` becomes its comm."""
        binary = shutil.which("sleep")
        assert binary is not None
        if name != "sleep":
            link = self.base / name
            with contextlib.suppress(FileExistsError):
                link.symlink_to(binary)
            binary = str(link)
        proc = subprocess.Popen([binary, "10000"], env={"PATH": "/usr/bin:/bin", **(env or {})},
                                user=user.uid, group=user.gid, cwd="/",
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        return proc.pid

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)


@pytest.fixture
def screens() -> Iterator[Screens]:
    base = Path(tempfile.mkdtemp(prefix="pdl-x-"))
    base.chmod(0o755)
    made = Screens(base)
    try:
        yield made
    finally:
        made.stop()
        shutil.rmtree(base, ignore_errors=True)
