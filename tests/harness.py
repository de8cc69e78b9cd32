"""The test harness: waiting with a deadline, real ``pdt-`` accounts, a real ``polydesk serve``
on temporary directories, clients of its API, and real nats-server nodes.

The tests' fixtures (``tests/**/conftest.py``) and the bench (``bench/``) are built from it.
Importing it needs nothing: no root, no pytest. What makes accounts or starts a daemon needs
root, and says so when called without it (``require_root``).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

from tests import leaks, users
from tests.users import ADMIN_GROUP, DASHBOARD_GROUP, TestUser, remove_user, user_pids

__all__ = [
    "ADMIN_GROUP", "DASHBOARD_GROUP", "NATS_SERVER", "Daemon", "Nats", "NatsNode", "TestUser", "WaitTimeout",
    "await_for", "create_user", "free_port", "groups_of", "make_daemon_dirs", "remove_user",
    "remove_with_processes", "require_root", "scratch_dir", "shutdown", "start_nats", "user_pids", "wait_for",
    "write_xsession",
]

T = TypeVar("T")
REPOSITORY = Path(__file__).resolve().parents[1]  # the checkout whose code the tests run

# ---------------------------------------------------------------- waiting


class WaitTimeout(AssertionError):
    """What a test waited for did not come in time (an assertion that failed, late)."""


def wait_for(probe: Callable[[], T], timeout: float = 10.0, what: str | None = None,
             show: Callable[[], object] | None = None) -> T:
    """Call ``probe`` until it gives something true, and return that. After ``timeout`` seconds
    raise WaitTimeout naming ``what`` (by default the probe's source) and, when given, what
    ``show`` gives then (the state that was not the one awaited)."""
    tries = _Tries(probe, timeout, what, show)
    for pause in tries:
        time.sleep(pause)
    return tries.value


async def await_for(probe: Callable[[], T], timeout: float = 10.0, what: str | None = None,
                    show: Callable[[], object] | None = None) -> T:
    """``wait_for`` inside an event loop: it sleeps without blocking the loop."""
    tries = _Tries(probe, timeout, what, show)
    for pause in tries:
        await asyncio.sleep(pause)
    return tries.value


@dataclass
class _Tries(Generic[T]):
    """The pauses between two calls of the probe, until it gives something true (kept in
    ``value``); past the deadline, WaitTimeout."""

    probe: Callable[[], T]
    timeout: float
    what: str | None
    show: Callable[[], object] | None

    def __iter__(self) -> Iterator[float]:
        deadline = time.monotonic() + self.timeout
        pause = 0.01
        while not (value := self.probe()):
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(_timed_out(self.probe, self.timeout, self.what, self.show))
            yield min(pause, left)
            pause = min(pause * 2, 0.2)  # quick for what comes at once, light on what takes seconds
        self.value = value


def _timed_out(probe: Callable[[], object], timeout: float, what: str | None,
               show: Callable[[], object] | None) -> str:
    what = what or _source_of(probe)
    return f"timed out after {timeout:g} s waiting for {what}" + ("" if show is None else f"; now: {show()}")


def _source_of(probe: Callable[[], object]) -> str:
    """A lambda's own text (the longest piece of its lines that is that lambda), else its name."""
    name = getattr(probe, "__qualname__", repr(probe))
    if getattr(probe, "__name__", "") != "<lambda>":
        return name
    try:
        text = " ".join(inspect.getsource(probe).split())
    except OSError:
        return name
    text = text[text.find("lambda"):]
    for end in range(len(text), 0, -1):
        with contextlib.suppress(SyntaxError):
            if isinstance(ast.parse(text[:end], mode="eval").body, ast.Lambda):
                return text[:end]
    return text


# ---------------------------------------------------------------- the machine


def require_root(doing: str) -> None:
    """Raise PermissionError unless root: ``doing`` creates users or starts real sessions."""
    if os.geteuid() != 0:
        raise PermissionError(f"{doing} needs root: it creates Unix users and real sessions")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scratch_dir(prefix: str) -> Path:
    """A new temporary directory, traversable by the test users, whose processes the leak check
    counts as this run's (their command line names it)."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    leaks.claim_dir(path)
    return path


def create_user(stem: str, groups: tuple[str, ...] = ()) -> TestUser:
    """A fresh ``pdt-`` account (see tests/users.py); root only."""
    require_root("creating a test account")
    return users.create_user(stem, groups)


def remove_with_processes(user: TestUser) -> list[int]:
    """Kill (by pid) every live process of ``user``, then remove the account; the pids that ran."""
    pids = user_pids(user.uid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    remove_user(user)
    return pids


def write_xsession(user: TestUser, script: str) -> None:
    """Give ``user`` an executable ~/.xsession holding ``script`` (their own file, as a real one is)."""
    path = Path(user.home) / ".xsession"
    path.write_text(script)
    os.chown(path, user.uid, user.gid)
    path.chmod(0o755)


def groups_of(user: TestUser) -> list[int]:
    """The supplementary groups of ``user`` (the Dashboard and admin groups among them)."""
    return [gid for gid in os.getgrouplist(user.name, user.gid) if gid != user.gid]


# ---------------------------------------------------------------- the daemon


@dataclass
class Daemon:
    """A real ``polydesk serve`` on temporary state and runtime directories."""

    state_dir: Path
    runtime_dir: Path
    port: int
    config: Path
    proc: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.state_dir.parent / "daemon.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "api.sock"

    def env(self) -> dict[str, str]:
        # The developer's tracemalloc switch passes through (polydesk/system/memory.py)
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("POLYDESK_") or k.startswith("POLYDESK_TRACEMALLOC")}
        env.update(POLYDESK_CONFIG=str(self.config), POLYDESK_STATE_DIR=str(self.state_dir),
                   POLYDESK_RUNTIME_DIR=str(self.runtime_dir),
                   # The code under test, from wherever the CLI runs (cwd "/"), not the venv's copy
                   PYTHONPATH=os.pathsep.join([str(REPOSITORY), *os.environ.get("PYTHONPATH", "").split(
                       os.pathsep)]).rstrip(os.pathsep))
        return env

    def start(self, *args: str) -> None:
        require_root("starting a Polydesk daemon")
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "polydesk", "serve", *args], env=self.env(),
                                         stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(self._accepts, timeout=20, what="the daemon's API socket")
        except WaitTimeout as exc:
            raise RuntimeError(f"daemon did not start:\n{self.log.read_text()}") from exc

    def _accepts(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
        if not self.socket.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(self.socket))
        except OSError:
            return False
        return True

    def kill(self) -> None:
        """kill -9: the daemon dies without any chance to tidy up."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout=20)

    def cli(self, *args: str, user: TestUser | None = None, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``polydesk ARGS`` as ``user`` (root when None), as that user would."""
        kwargs: dict[str, Any] = {}
        env = self.env()
        if user is not None:
            kwargs.update(user=user.uid, group=user.gid, extra_groups=groups_of(user))
            env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        return subprocess.run([sys.executable, "-m", "polydesk", *args], env=env, text=True,
                              capture_output=True, input=input, timeout=timeout, cwd="/", **kwargs)

    def cli_json(self, *args: str, user: TestUser | None = None) -> Any:
        result = self.cli(*args, "--json", user=user)
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout)

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.cli_json("sessions"))

    def client(self, base: str = "", timeout: float = 60) -> httpx.Client:
        """The REST API on the Unix socket, as root (peer credentials: an administrator);
        ``base`` is a path prefix such as ``/api/v1``."""
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)),
                            base_url=f"http://polydesk{base}", timeout=timeout)

    def async_client(self, base: str = "", timeout: float = 60) -> httpx.AsyncClient:
        """``client`` for an event loop."""
        return httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(self.socket)),
                                 base_url=f"http://polydesk{base}", timeout=timeout)


# The tests' daemons check passwords with real PAM and pam_unix, but without the fixed wait after
# a failure that Debian's `login` service adds (3 s per wrong password, minutes over the suite):
# what the tests check is the daemon's own holding back (web/signin.py), which stays the same.
# pytest-xdist runs the suite in two workers: each has a PAM service file of its own, which it
# removes when it ends while the other may still sign in.
WORKER = os.environ.get("PYTEST_XDIST_WORKER")
PAM_SERVICE = "polydesk-test" + (f"-{WORKER}" if WORKER else "")
PAM_FILE = Path("/etc/pam.d") / PAM_SERVICE


@contextlib.contextmanager
def pam_service() -> Iterator[str]:
    """The tests' PAM service, for as long as the context lasts (daemons made meanwhile use it)."""
    PAM_FILE.write_text("# Polydesk's tests (removed after them): passwords without a wait after a failure\n"
                        "auth     required  pam_unix.so nodelay\n"
                        "account  required  pam_unix.so\n")
    try:
        yield PAM_SERVICE
    finally:
        PAM_FILE.unlink(missing_ok=True)


def make_daemon_dirs(extra_config: str = "", backends: str = '["xvnc"]') -> Daemon:
    """A daemon's directories and configuration (the test groups, a free port); not started."""
    base = scratch_dir("pdt-daemon-")  # test users reach the API socket inside
    state, runtime = base / "state", base / "run"
    port = free_port()
    config = base / "polydesk.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\n'
        f'admin_group = "{ADMIN_GROUP}"\ndashboard_group = "{DASHBOARD_GROUP}"\n'
        + (f'pam_service = "{PAM_SERVICE}"\n' if PAM_FILE.exists() else "")
        + f"backends = {backends}\n{extra_config}\n"  # last: extra_config may open a [table]
    )
    return Daemon(state, runtime, port, config)


def shutdown(daemon: Daemon) -> None:
    """End every session the daemon has, then the daemon, then its directories."""
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.cli("logoff", "--all", "--force", "--yes", timeout=120)
        daemon.stop()
    shutil.rmtree(daemon.state_dir.parent, ignore_errors=True)


# ---------------------------------------------------------------- NATS (the fleet's bus)

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"


@dataclass
class NatsNode:
    """One nats-server with JetStream, on loopback ports, stopped and started by pid."""

    name: str
    store: Path
    port: int = field(default_factory=free_port)
    monitor: int = field(default_factory=free_port)
    cluster_port: int | None = None
    routes: list[int] = field(default_factory=list)
    conf: Path | None = None  # a configuration file (authorization ...) besides the flags
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        if not Path(NATS_SERVER).exists():
            raise FileNotFoundError("nats-server is not installed: run scripts/install --test")
        args = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor),
                "-sd", str(self.store), "-n", self.name] + (["-c", str(self.conf)] if self.conf else [])
        if self.cluster_port is not None:
            args += ["--cluster_name", "pdt", "-cluster", f"nats://127.0.0.1:{self.cluster_port}",
                     "-routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        log = open(self.store.parent / f"{self.name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_for(self._accepts, timeout=10, what=f"nats-server {self.name} to start")

    def _accepts(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"nats-server {self.name} exited with {self.proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
        except OSError:
            return False
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def varz(self) -> dict[str, Any]:
        return self._monitor("varz")

    def jsz(self) -> dict[str, Any]:
        return self._monitor("jsz?streams=true")

    def _monitor(self, path: str) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/{path}", timeout=5) as answer:
            result: dict[str, Any] = json.load(answer)
            return result


@dataclass
class Nats:
    nodes: list[NatsNode]
    base: Path

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def start_nats(nodes: int = 1, conf: str | None = None) -> Nats:
    """``nodes`` nats-servers (a cluster when more than one), each with its own store."""
    base = scratch_dir("pdt-nats-")
    made = [NatsNode(f"n{i}", base / f"n{i}") for i in range(nodes)]
    if conf is not None:
        (base / "nats.conf").write_text(conf)
        for node in made:
            node.conf = base / "nats.conf"
    if nodes > 1:
        ports = [free_port() for _ in made]
        for node, port in zip(made, ports, strict=True):
            node.cluster_port = port
            node.routes = [p for p in ports if p != port]
    nats = Nats(made, base)
    try:
        for node in made:
            node.start()
    except BaseException:
        nats.stop()
        raise
    return nats
