"""Hosts of a test fleet: Polydesk daemons joined to a NATS bus (tests/harness.py starts
nats-server), each with its own nkey seed, trusting the others', on fast heartbeats."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polydesk.fleet.wire import Signer, new_seed
from tests.harness import Daemon, Nats, wait_for

# Fast beats so tests see a host go offline within seconds; stale entries expire after 10 s.
FAST = {"heartbeat": 1.0, "offline_after": 4.0, "stale_after": 10, "request_timeout": 5.0}


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


def sees_the_fleet(host: Host, size: int) -> None:
    def seen() -> bool:
        return all(v["online"] for v in host.hosts().values()) and len(host.hosts()) == size

    wait_for(seen, timeout=15, what=f"host {host.name} to see the fleet",
             show=lambda: f"{host.hosts()}\n" + host.daemon.log.read_text()[-3000:])


def make_fleet(make_daemon: Callable[..., Daemon], directory: Path, nats: Nats,
               names: tuple[str, ...] = ("A", "B"), replicas: int = 1, backends: str = '["xvnc"]',
               seeds: dict[str, Path] | None = None, settings: str = "", **extra: Any) -> list[Host]:
    """Daemons (made by ``make_daemon``) joined to ``nats`` as hosts named by ``names``, each
    trusting all the others, once each sees every other online."""
    seeds = seeds or make_seeds(directory, names)
    keys = {name: Signer(path.read_bytes()).public_key for name, path in seeds.items()}
    made = []
    for number, name in enumerate(names):
        config = fleet_config(name, seeds[name], nats.urls, keys, first_display=30 + 20 * number,
                              replicas=replicas, settings=settings, **extra)
        daemon = make_daemon(extra_config=config, backends=backends)
        made.append(Host(name, daemon, seeds[name], keys[name]))
    # Each sees every other online (heartbeats arrived both ways).
    for host in made:
        sees_the_fleet(host, len(made))
    return made
