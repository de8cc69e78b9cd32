"""Process tracking and ending in every mode, on real processes and the real cgroup trees."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from polydesk.system import processes
from polydesk.system.cgroups import Mounts
from polydesk.system.tracking import MarkerTracker, Tracker, Tracking, TrackingError, TrackingMode, choose
from tests.harness import wait_for

MACHINE = Mounts.read()

# A session leader that plants the two classic escapers and then waits:
# one double-forks and calls setsid (leaves the tree and the session), one ignores SIGTERM.
LEADER = """
( setsid sh -c 'echo $$ > "$1/escaper"; exec sleep 1000' sh "$1" & )
sh -c 'trap "" TERM; echo $$ > "$1/stubborn"; while :; do sleep 1; done' sh "$1" &
exec sleep 1000
"""
# A process that forks as fast as it can: only a frozen, killed-at-once group stops it.
FORKER = "while :; do ( sleep 100 & ) ; done"


def tracking_for(mode: str) -> Tracking:
    """cgroup2 | cgroup1-freezer | cgroup1-pids | marker, or skip where this machine lacks it."""
    try:
        if mode.startswith("cgroup1-"):
            controller = mode.split("-")[1]
            if controller not in MACHINE.v1:
                pytest.skip(f"no cgroup v1 {controller} hierarchy here")
            return choose("cgroup1", Mounts(None, {controller: MACHINE.v1[controller]}))
        return choose(mode, MACHINE)
    except TrackingError as exc:
        pytest.skip(str(exc))


MODES = ["cgroup2", "cgroup1-freezer", "cgroup1-pids", "marker"]


@pytest.fixture
def spawned() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Session leaders started by a test; whatever is left is killed and reaped."""
    made: list[subprocess.Popen[bytes]] = []
    yield made
    for proc in made:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def spawn(tracker: Tracker, script: str, *args: str) -> subprocess.Popen[bytes]:
    """Start ``script`` as the backend does: joining the session from the child, before exec."""
    env = {"PATH": "/usr/bin:/bin", **tracker.marker_env()}
    return subprocess.Popen(["sh", "-c", script, "sh", *args], env=env, start_new_session=True,
                            preexec_fn=tracker.join, stdin=subprocess.DEVNULL)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def session_id(tag: str) -> str:
    return f"ptest-{tag}-{os.getpid()}-{os.urandom(2).hex()}"


@pytest.mark.parametrize("mode", MODES)
def test_escapers_are_tracked_and_ended(mode: str, tmp_path: Path,
                                        spawned: list[subprocess.Popen[bytes]]) -> None:
    tracking = tracking_for(mode)
    leader_tracker = tracking.tracker(session_id(mode))
    leader_tracker.create()
    try:
        leader = spawn(leader_tracker, LEADER, str(tmp_path))
        spawned.append(leader)
        tracker = tracking.tracker(leader_tracker.session_id,
                                   [(leader.pid, processes.start_time(leader.pid) or 0)])
        wait_for(lambda: read_pid(tmp_path / "escaper") and read_pid(tmp_path / "stubborn"),
                 what="the escapers")
        escaper, stubborn = read_pid(tmp_path / "escaper"), read_pid(tmp_path / "stubborn")
        assert escaper is not None and stubborn is not None
        assert os.getsid(escaper) != os.getsid(leader.pid)
        assert {leader.pid, escaper, stubborn} <= set(tracker.pids())

        tracker.terminate()
        wait_for(lambda: not processes.is_running(escaper), 5, "the escaper to take its SIGTERM")
        assert processes.is_running(stubborn)  # it ignores SIGTERM ...
        assert tracker.kill() == []  # ... not SIGKILL
        leader.wait(5)
        assert not processes.is_running(stubborn)
        assert tracker.pids() == []
    finally:
        leader_tracker.kill()
        leader_tracker.remove()
    if leader_tracker.cgroup is not None:
        assert not leader_tracker.cgroup.exists()


@pytest.mark.parametrize("mode", MODES)
def test_a_fork_loop_is_ended(mode: str, spawned: list[subprocess.Popen[bytes]]) -> None:
    tracker = tracking_for(mode).tracker(session_id("fork"))
    tracker.create()
    try:
        proc = spawn(tracker, FORKER)
        spawned.append(proc)
        wait_for(lambda: len(tracker.pids()) > 20, 5, "the fork loop to get going")
        assert tracker.kill(timeout=10) == []
        proc.wait(5)
        time.sleep(0.2)
        assert tracker.pids() == []
    finally:
        tracker.kill()
        tracker.remove()


def test_marker_mode_follows_the_tree_when_the_marker_is_dropped(
        spawned: list[subprocess.Popen[bytes]]) -> None:
    tracker = MarkerTracker(session_id("tree"))
    proc = spawn(tracker, "env -i sleep 1000 & exec sleep 1000")
    spawned.append(proc)
    wait_for(lambda: len(_children(proc.pid)) == 1, 5, "the unmarked child")
    (child,) = _children(proc.pid)
    assert set(tracker.pids()) == {proc.pid, child}  # found as a descendant of a marked process
    assert tracker.kill() == []
    proc.wait(5)


def test_marker_mode_hole_is_what_the_docs_say(tmp_path: Path,
                                               spawned: list[subprocess.Popen[bytes]]) -> None:
    """Dropping the marker *and* leaving the tree escapes the marker mode (not the cgroups)."""
    tracker = MarkerTracker(session_id("hole"))
    script = "( env -i setsid sh -c 'echo $$ > \"$1\"; exec sleep 1000' sh \"$1\" & ); exec sleep 1000"
    proc = spawn(tracker, script, str(tmp_path / "hidden"))
    spawned.append(proc)
    wait_for(lambda: read_pid(tmp_path / "hidden"), 5, "the hidden process")
    hidden = read_pid(tmp_path / "hidden")
    assert hidden is not None
    try:
        assert tracker.pids() == [proc.pid]
    finally:
        processes.send([hidden], signal.SIGKILL)
        tracker.kill()
    proc.wait(5)


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2:].split()[1]) == pid and processes.is_running(int(entry)):
                found.append(int(entry))
    return found


def test_a_cgroup_in_use_is_not_reused(spawned: list[subprocess.Popen[bytes]]) -> None:
    tracking = tracking_for("cgroup2")
    tracker = tracking.tracker(session_id("busy"))
    tracker.create()
    try:
        proc = spawn(tracker, "exec sleep 1000")
        spawned.append(proc)
        wait_for(lambda: tracker.pids() == [proc.pid], 5, "the sleeper to join")
        with pytest.raises(TrackingError, match="still in use"):
            tracking.tracker(tracker.session_id).create()
    finally:
        tracker.kill()
        tracker.remove()


# ---------------------------------------------------------------- choosing a mode


def test_auto_prefers_cgroup2_then_cgroup1_then_marker(tmp_path: Path) -> None:
    if MACHINE.cgroup2 is not None:
        assert choose("auto", MACHINE).mode == TrackingMode.CGROUP2
    if "freezer" in MACHINE.v1:
        v1_only = Mounts(None, dict(MACHINE.v1))
        chosen = choose("auto", v1_only)
        assert (chosen.mode, chosen.controller) == (TrackingMode.CGROUP1, "freezer")
    assert choose("auto", Mounts(None, {})).mode == TrackingMode.MARKER
    # A cgroup2 tree without cgroup.kill (kernel < 5.14) is passed over.
    old_kernel = tmp_path / "cgroup2"
    old_kernel.mkdir()
    assert choose("auto", Mounts(old_kernel, {})).mode == TrackingMode.MARKER


def test_forcing_an_unavailable_mode_is_a_clear_error() -> None:
    with pytest.raises(TrackingError, match="no cgroup2"):
        choose("cgroup2", Mounts(None, {}))
    with pytest.raises(TrackingError, match="freezer or pids"):
        choose("cgroup1", Mounts(None, {}))
    with pytest.raises(TrackingError, match="unknown process tracking mode"):
        choose("systemd", MACHINE)


def test_mounts_are_read_from_the_mount_table(tmp_path: Path) -> None:
    table = tmp_path / "mounts"
    table.write_text(
        "sysfs /sys sysfs rw 0 0\n"
        "cgroup /sys/fs/cgroup/freezer cgroup rw,relatime,freezer 0 0\n"
        "cgroup /sys/fs/cgroup/pids cgroup rw,relatime,pids 0 0\n"
        "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\n"
        "cgroup2 /sys/fs/cgroup/uni\\040fied cgroup2 rw,relatime 0 0\n"
    )
    mounts = Mounts.read(table)
    assert mounts.cgroup2 == Path("/sys/fs/cgroup/uni fied")
    assert mounts.v1 == {"freezer": Path("/sys/fs/cgroup/freezer"), "pids": Path("/sys/fs/cgroup/pids")}


def test_tracking_survives_a_round_trip_through_json() -> None:
    for tracking in (Tracking(TrackingMode.MARKER), Tracking(TrackingMode.CGROUP2, Path("/sys/fs/cgroup")),
                     Tracking(TrackingMode.CGROUP1, Path("/sys/fs/cgroup/freezer"), "freezer")):
        assert Tracking.from_data(dict(tracking.as_data())) == tracking


def test_session_ids_that_would_escape_a_path_are_refused() -> None:
    for bad in ("../etc", "a/b", "", "x" * 65, "a b"):
        with pytest.raises(ValueError):
            MarkerTracker(bad)


def test_a_pid_is_only_ours_with_its_start_time() -> None:
    me = os.getpid()
    started = processes.start_time(me)
    assert started is not None
    assert processes.is_running(me, started)
    assert not processes.is_running(me, started + 1)
    proc = subprocess.Popen(["true"])
    proc.wait()
    assert processes.start_time(proc.pid) is None
    assert not processes.is_running(proc.pid)


def test_zombies_do_not_count_as_running() -> None:
    proc = subprocess.Popen(["true"])
    wait_for(lambda: _state(proc.pid) == "Z", 5, "the zombie")
    assert not processes.is_running(proc.pid)
    proc.wait()


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2]


def test_send_ignores_vanished_pids() -> None:
    proc = subprocess.Popen(["true"])
    proc.wait()
    processes.send([proc.pid], signal.SIGTERM)  # no error


def test_a_process_counts_as_exiting_once_it_is_a_zombie_or_gone() -> None:
    child = subprocess.Popen(["sleep", "30"])
    try:
        assert not processes.is_exiting(child.pid)
        child.kill()
        deadline = time.monotonic() + 5
        while not processes.is_exiting(child.pid):  # a zombie until reaped below
            assert time.monotonic() < deadline, "SIGKILL never took"
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert processes.is_exiting(child.pid)  # reaped: gone
