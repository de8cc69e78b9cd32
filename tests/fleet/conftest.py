"""Fleet fixtures: real nats-server processes (one, or a 3-node cluster) with JetStream on
loopback ports and stores in temporary directories, and Polydesk daemons joined to them
(tests/fleet/hosts.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fleet import hosts
from tests.fleet.hosts import Host
from tests.harness import NATS_SERVER, Daemon, Nats, start_nats

if not Path(NATS_SERVER).exists():  # a missing install is a failure, never a skip
    pytest.exit("nats-server is not installed: run scripts/install --test", returncode=3)


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


@pytest.fixture
def make_fleet(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Callable[..., list[Host]]:
    """``make_fleet(nats, names, ...)``: daemons joined to ``nats`` (see hosts.make_fleet)."""
    return functools.partial(hosts.make_fleet, daemon_factory, tmp_path)
