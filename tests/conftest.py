"""Shared fixtures: real test accounts, a running daemon, the CLI as any user,
and a guard that fails any test leaving a process behind (as Cockpit's suite does)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.users import ADMIN_GROUP, DASHBOARD_GROUP, TestUser, create_user, remove_user, user_pids

if os.geteuid() != 0:
    pytest.exit("the Polydesk suite runs as root: it creates Unix users and real sessions", returncode=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def no_process_left_behind(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a child process of the test run behind."""
    me = psutil.Process()
    before = {p.pid for p in me.children(recursive=True)}
    yield
    deadline = time.monotonic() + 5
    while True:
        left = [p for p in me.children(recursive=True) if p.pid not in before and p.is_running()
                and p.status() != psutil.STATUS_ZOMBIE]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    if left:
        names = ", ".join(f"{p.pid} {p.name()}" for p in left)
        for p in left:
            p.kill()
        pytest.fail(f"{request.node.nodeid} left processes behind: {names}")


@pytest.fixture
def make_user() -> Iterator[Callable[..., TestUser]]:
    """Create real ``pdt-`` accounts; removed, with every process they own, afterwards."""
    made: list[TestUser] = []

    def make(stem: str = "user", role: str = "standard") -> TestUser:
        groups = {"standard": (), "dashboard": (DASHBOARD_GROUP,), "admin": (ADMIN_GROUP,)}[role]
        user = create_user(stem, groups)
        made.append(user)
        return user

    yield make
    leftovers = {user.name: user_pids(user.uid) for user in made}
    for user in made:
        for pid in user_pids(user.uid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        remove_user(user)
    stray = {name: pids for name, pids in leftovers.items() if pids}
    assert not stray, f"processes of test users outlived the test: {stray}"


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
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLYDESK_")}
        env.update(POLYDESK_CONFIG=str(self.config), POLYDESK_STATE_DIR=str(self.state_dir),
                   POLYDESK_RUNTIME_DIR=str(self.runtime_dir))
        return env

    def start(self, *args: str) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "polydesk", "serve", *args], env=self.env(),
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()}")
            if self.socket.exists():
                try:
                    with socket.socket(socket.AF_UNIX) as s:
                        s.connect(str(self.socket))
                    return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError(f"daemon did not start:\n{self.log.read_text()}")

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
            kwargs.update(user=user.uid, group=user.gid, extra_groups=_groups_of(user))
            env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        return subprocess.run([sys.executable, "-m", "polydesk", *args], env=env, text=True,
                              capture_output=True, input=input, timeout=timeout, cwd="/", **kwargs)

    def cli_json(self, *args: str, user: TestUser | None = None) -> Any:
        result = self.cli(*args, "--json", user=user)
        assert result.returncode in (0, 1), result.stderr
        return json.loads(result.stdout)

    def sessions(self) -> list[dict[str, Any]]:
        return list(self.cli_json("sessions"))


def _groups_of(user: TestUser) -> list[int]:
    return [gid for gid in os.getgrouplist(user.name, user.gid) if gid != user.gid]


# The tests' daemons check passwords with real PAM and pam_unix, but without the fixed wait after
# a failure that Debian's `login` service adds (3 s per wrong password, minutes over the suite):
# what the tests check is the daemon's own holding back (web/signin.py), which stays the same.
PAM_SERVICE = "polydesk-test"
PAM_FILE = Path("/etc/pam.d") / PAM_SERVICE


@pytest.fixture(scope="session", autouse=True)
def pam_service() -> Iterator[str]:
    PAM_FILE.write_text("# Polydesk's tests (removed after them): passwords without a wait after a failure\n"
                        "auth     required  pam_unix.so nodelay\n"
                        "account  required  pam_unix.so\n")
    yield PAM_SERVICE
    PAM_FILE.unlink(missing_ok=True)


def make_daemon_dirs(extra_config: str = "", backends: str = '["xvnc"]') -> Daemon:
    base = Path(tempfile.mkdtemp(prefix="pdt-daemon-"))
    os.chmod(base, 0o755)  # test users reach the API socket inside
    state, runtime = base / "state", base / "run"
    port = free_port()
    config = base / "polydesk.toml"
    config.write_text(
        f'listen = "127.0.0.1:{port}"\n'
        f'admin_group = "{ADMIN_GROUP}"\ndashboard_group = "{DASHBOARD_GROUP}"\n'
        f'backends = {backends}\npam_service = "{PAM_SERVICE}"\n{extra_config}\n'
    )
    return Daemon(state, runtime, port, config)


def shutdown(daemon: Daemon) -> None:
    """End every session the daemon has, then the daemon, then its directories."""
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.cli("logoff", "--all", "--force", "--yes", timeout=120)
        daemon.stop()
    shutil.rmtree(daemon.state_dir.parent, ignore_errors=True)


@pytest.fixture
def daemon_factory(make_user: Callable[..., TestUser]) -> Iterator[Callable[..., Daemon]]:
    """Daemons are torn down (their sessions logged off) before the test users are removed."""
    made: list[Daemon] = []

    def make(extra_config: str = "", backends: str = '["xvnc"]', start: bool = True) -> Daemon:
        daemon = make_daemon_dirs(extra_config, backends)
        made.append(daemon)
        if start:
            daemon.start()
        return daemon

    yield make
    for daemon in made:
        shutdown(daemon)


@pytest.fixture
def daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    """A real daemon with the built-in Xvnc host."""
    return daemon_factory()


@pytest.fixture
def fake_daemon(daemon_factory: Callable[..., Daemon]) -> Daemon:
    """A real daemon whose sessions are in-memory (FakeBackend): for fast interface tests."""
    return daemon_factory(backends='["fake"]')
