"""Per-session limits (issue 13, point 9): where each limit goes, on fake cgroup trees and on
this machine's real ones, with a real Xvnc session."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from polydesk.system import cgroups
from polydesk.system.cgroups import Limits, Mounts, Place
from tests.backends.sessions import Sessions, live_pids
from tests.users import TestUser

LIMITS = Limits(pids_max=256, memory_max=512 << 20, cpu_weight=100)
WRITTEN = {"pids": {"pids.max": "256"},
           "memory": {1: {"memory.limit_in_bytes": str(512 << 20)},
                      2: {"memory.max": str(512 << 20), "memory.high": str((512 << 20) // 10 * 9)}},
           "cpu": {1: {"cpu.shares": "1024"}, 2: {"cpu.weight": "100"}}}


def expected_files(controller: str, version: int) -> dict[str, str]:
    table = WRITTEN[controller]
    return table if controller == "pids" else table[version]  # type: ignore[return-value]


def fake_cgroup2(root: Path, controllers: str) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("\n")
    (root / cgroups.CGROUP_PARENT).mkdir()
    (root / cgroups.CGROUP_PARENT / "cgroup.subtree_control").write_text("\n")
    return root


def test_the_unified_tree_carries_every_limit_it_has_a_controller_for(tmp_path: Path) -> None:
    unified = fake_cgroup2(tmp_path / "unified", "cpuset cpu io memory hugetlb pids")
    plan = cgroups.plan(LIMITS, unified, {"pids": tmp_path / "v1-pids"})
    assert plan.places == tuple(Place(c, unified, 2) for c in ("pids", "memory", "cpu"))
    assert plan.dirs("s1") == [unified / "polydesk" / "session-s1"]  # the tracking cgroup itself
    plan.apply("s1")
    session = unified / "polydesk" / "session-s1"
    for controller in ("pids", "memory", "cpu"):
        for name, value in expected_files(controller, 2).items():
            assert (session / name).read_text() == value, name


def test_missing_controllers_fall_back_to_v1_then_to_none_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    unified = fake_cgroup2(tmp_path / "unified", "hugetlb")  # as on this machine
    pids = tmp_path / "pids"
    pids.mkdir()
    with caplog.at_level(logging.WARNING, logger="polydesk.system.cgroups"):
        plan = cgroups.plan(LIMITS, unified, {"pids": pids})
    assert plan.places == (Place("pids", pids, 1),)
    assert sorted(r.getMessage().split()[2] for r in caplog.records) == ["cpu", "memory"]
    plan.apply("s2")
    assert (pids / "polydesk" / "session-s2" / "pids.max").read_text() == "256"
    caplog.clear()
    assert cgroups.plan(Limits(), unified, {"pids": pids}).places == ()  # nothing wanted, nothing said
    assert caplog.records == []


def machine_offers() -> dict[str, tuple[Path, int]]:
    """Which limit controllers this machine really has, and where (unified tree first)."""
    mounts = Mounts.read()
    unified = set()
    if mounts.cgroup2 is not None:
        unified = set((mounts.cgroup2 / "cgroup.controllers").read_text().split())
    offers: dict[str, tuple[Path, int]] = {}
    for controller in cgroups.CONTROLLERS:
        if controller in unified and mounts.cgroup2 is not None:
            offers[controller] = (mounts.cgroup2, 2)
        elif controller in mounts.v1:
            offers[controller] = (mounts.v1[controller], 1)
    return offers


async def test_a_session_starts_inside_its_limits_and_leaves_no_cgroup(
    sessions: Sessions, account: Callable[[str], TestUser]
) -> None:
    offers = machine_offers()
    print(f"limit controllers here: { {c: f'{p} (v{v})' for c, (p, v) in offers.items()} }")
    assert offers, "this machine offers no cgroup controller for pids, memory or cpu"
    user = account("limits")
    backend = sessions.backend(limits=LIMITS)
    session = await sessions.start(user, backend)
    key = str(session.backend_data["track_key"])
    pids = live_pids(user.uid)
    assert pids
    for controller, (mount, version) in offers.items():
        directory = cgroups.session_dir(mount, key)
        for name, value in expected_files(controller, version).items():
            assert (directory / name).read_text().strip() == value, (controller, name)
        members = {int(p) for p in (directory / "cgroup.procs").read_text().split()}
        assert set(pids) <= members, (controller, pids, members)  # every process of the session
    await backend.end(session, kill_after=1)
    left = [cgroups.session_dir(m, key) for m, _ in offers.values()]
    assert not [d for d in left if os.path.exists(d)]
