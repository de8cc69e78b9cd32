"""Fleet fixtures: real nats-server processes (one, or a 3-node cluster) with JetStream on
loopback ports and stores in temporary directories, and Polydesk daemons joined to them,
each its own host with its own nkey seed, trusting the others'."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from polydesk.fleet.wire import Signer, new_seed
from tests.conftest import Daemon, free_port
from tests.web.conftest import browser  # noqa: F401 (the fleet page's test uses it too)

NATS_SERVER = shutil.which("nats-server") or "/usr/sbin/nats-server"
if not Path(NATS_SERVER).exists():  # a missing install is a failure, never a skip
    pytest.exit("nats-server is not installed: run scripts/install --test", returncode=3)

# Fast beats so tests see a host go offline within seconds; stale entries expire after 10 s.
FAST = {"heartbeat": 1.0, "offline_after": 4.0, "stale_after": 10, "request_timeout": 5.0}


def wait_for(predicate: Callable[[], Any], timeout: float = 10, step: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


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
        args = [NATS_SERVER, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor),
                "-sd", str(self.store), "-n", self.name] + (["-c", str(self.conf)] if self.conf else [])
        if self.cluster_port is not None:
            args += ["--cluster_name", "pdt", "-cluster", f"nats://127.0.0.1:{self.cluster_port}",
                     "-routes", ",".join(f"nats://127.0.0.1:{p}" for p in self.routes)]
        log = open(self.store.parent / f"{self.name}.log", "ab")  # noqa: SIM115 (the child keeps it)
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        ready = wait_for(self._accepts, timeout=10, step=0.05)
        assert ready, f"nats-server {self.name} did not start"

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
        with urllib.request.urlopen(f"http://127.0.0.1:{self.monitor}/varz", timeout=5) as answer:
            result: dict[str, Any] = json.load(answer)
            return result

    def jsz(self) -> dict[str, Any]:
        url = f"http://127.0.0.1:{self.monitor}/jsz?streams=true"
        with urllib.request.urlopen(url, timeout=5) as answer:
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
    base = Path(tempfile.mkdtemp(prefix="pdt-nats-"))
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


@pytest.fixture
def nats_server() -> Iterator[Nats]:
    nats = start_nats(1)
    yield nats
    nats.stop()


@pytest.fixture
def nats_cluster() -> Iterator[Nats]:
    nats = start_nats(3)
    yield nats
    nats.stop()


@dataclass
class Host:
    """A Polydesk daemon that is one host of the fleet."""

    name: str
    daemon: Daemon
    seed: Path
    public_key: str

    def fleet_sessions(self) -> list[dict[str, Any]]:
        return list(self.daemon.cli_json("sessions", "--fleet"))

    def hosts(self) -> dict[str, dict[str, Any]]:
        return {h["name"]: h for h in self.daemon.cli_json("hosts")}

    def audit(self) -> list[dict[str, Any]]:
        return list(self.daemon.cli_json("audit", "--limit", "200"))


def make_seeds(directory: Path, names: tuple[str, ...]) -> dict[str, Path]:
    seeds = {}
    for name in names:
        path = directory / f"{name}.seed"
        path.write_bytes(new_seed() + b"\n")
        path.chmod(0o600)
        seeds[name] = path
    return seeds


def fleet_config(name: str, seed: Path, servers: list[str], trusted: dict[str, str],
                 first_display: int, replicas: int = 1, settings: str = "", **extra: Any) -> str:
    lines = [f"first_display = {first_display}", settings, "", "[fleet]", f'host = "{name}"',
             f"servers = {json.dumps(servers)}", f'seed_file = "{seed}"', f"replicas = {replicas}"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in {**FAST, **extra}.items()]
    lines += ["", "[fleet.trusted_hosts]"] + [f'{host} = "{key}"' for host, key in trusted.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture
def make_fleet(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Callable[..., list[Host]]:
    """Daemons joined to ``nats`` as hosts named by ``names``, each trusting all the others."""

    def make(nats: Nats, names: tuple[str, ...] = ("A", "B"), replicas: int = 1,
             hosts: str = '["xvnc"]', seeds: dict[str, Path] | None = None, settings: str = "",
             **extra: Any) -> list[Host]:
        seeds = seeds or make_seeds(tmp_path, names)
        keys = {name: Signer(path.read_bytes()).public_key for name, path in seeds.items()}
        made = []
        for number, name in enumerate(names):
            config = fleet_config(name, seeds[name], nats.urls, keys, first_display=30 + 20 * number,
                                  replicas=replicas, settings=settings, **extra)
            daemon = daemon_factory(extra_config=config, backends=hosts)
            made.append(Host(name, daemon, seeds[name], keys[name]))
        # Each sees every other online (heartbeats arrived both ways).
        for host in made:
            seen = wait_for(lambda h=host: all(  # type: ignore[misc]
                v["online"] for v in h.hosts().values()) and len(h.hosts()) == len(made), timeout=15)
            assert seen, f"host {host.name} does not see the fleet: {host.hosts()}\n" + \
                host.daemon.log.read_text()[-3000:]
        return made

    return make
