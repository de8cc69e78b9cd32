"""Issue 13, point 9: a fork bomb or a memory hog in one student's session must not slow the
daemon or the other sessions. The attack runs as the student, inside their real session (their
desktop starts it), against a real daemon; bounded in time and in count."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from tests.harness import Daemon, wait_for
from tests.test_daemon import logon, plant_xsession
from tests.users import TestUser, user_pids
from tests.web.webclient import socket_client

PIDS_MAX = 100
MEMORY_MAX_MIB = 160
API_BOUND_S = 1.0  # one answer while the bomb runs (a shared 2-core machine; without limits: 2-4 s)

# At most ATTEMPTS forks; every child leaves the session (setsid: its own scheduler autogroup,
# which would otherwise keep the CPU fair between sessions) and burns CPU until told to stop
# (at most SPIN seconds), then sleeps until logged off.
BOMB = r"""
import os, sys, time
attempts, spin, report = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
until, stop = time.monotonic() + spin, os.path.join(os.path.dirname(report), "stop")
made = refused = 0
for _ in range(attempts):
    try:
        pid = os.fork()
    except BlockingIOError:  # EAGAIN: no more processes for this session
        refused += 1
        if refused >= 20:
            break
        continue
    if pid == 0:
        os.setsid()
        while time.monotonic() < until and not os.path.exists(stop):
            for _ in range(100_000):
                pass
        time.sleep(3600)
        os._exit(0)
    made += 1
with open(report + ".tmp", "w") as fh:
    fh.write(f"{made} {refused}\n")
os.rename(report + ".tmp", report)
time.sleep(3600)
"""
# Waits; when asked, counts loop turns for a second of wall time: the CPU this session gets.
# Started with the desktop, so that a measure costs no Python start-up under load.
PROBE = r"""
import os, sys, time
home = sys.argv[1]
while True:
    if os.path.exists(f"{home}/probe"):
        os.unlink(f"{home}/probe")
        end, turns = time.monotonic() + 1, 0
        while time.monotonic() < end:
            turns += 1
        with open(f"{home}/turns.tmp", "w") as fh:
            fh.write(str(turns))
        os.rename(f"{home}/turns.tmp", f"{home}/turns")
    time.sleep(0.05)
"""
# Takes memory 8 MiB at a time, touched, up to a bound; says how far it got.
HOG = r"""
import sys
limit, report = int(sys.argv[1]), sys.argv[2]
blocks = []
while len(blocks) * 8 < limit:
    blocks.append(bytearray(b"\1") * (8 << 20))
    with open(report, "w") as fh:
        fh.write(str(len(blocks) * 8))
"""


def attack_desktop(user: TestUser, name: str, script: str, command: str) -> Path:
    """The student's desktop: waits for the word, starts the attack, stays. Returns the trigger."""
    home = Path(user.home)
    (home / f"{name}.py").write_text(script)
    os.chown(home / f"{name}.py", user.uid, user.gid)
    plant_xsession(user, "#!/bin/sh\n"
                         'while [ ! -e "$HOME/go" ]; do sleep 0.1; done\n'
                         f"{command}\n"
                         "exec sleep 3600\n")
    return home / "go"


def probe_desktop(user: TestUser) -> Callable[[], int]:
    """The other student's desktop: measures its share of the CPU whenever asked."""
    home = Path(user.home)
    (home / "probe.py").write_text(PROBE)
    plant_xsession(user, '#!/bin/sh\nexec /usr/bin/python3 "$HOME/probe.py" "$HOME"\n')

    def measure() -> int:
        (home / "turns").unlink(missing_ok=True)
        (home / "probe").touch()
        wait_for((home / "turns").exists, 30, what="the probe to answer")
        return int((home / "turns").read_text())

    return measure


def timed(call: Callable[[], httpx.Response]) -> float:
    started = time.monotonic()
    answer = call()
    assert answer.status_code == 200, answer.text
    return time.monotonic() - started


def test_a_fork_bomb_stops_at_the_sessions_limit_and_slows_nobody_else(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory(extra_config=f"session_max_processes = {PIDS_MAX}")
    student, other = make_user("bomber"), make_user("bia")
    go = attack_desktop(student, "bomb", BOMB,
                        '/usr/bin/python3 "$HOME/bomb.py" 300 30 "$HOME/bomb.report" &')
    probe = probe_desktop(other)
    bombed, calm = str(logon(daemon, student)["id"]), str(logon(daemon, other)["id"])
    report, stop = Path(student.home) / "bomb.report", Path(student.home) / "stop"
    with socket_client(daemon) as api, contextlib.ExitStack() as cleanup:
        cleanup.callback(stop.touch)
        assert timed(lambda: api.get(f"/api/v1/sessions/{calm}/thumbnail?size=small")) < API_BOUND_S
        alone = probe()
        go.touch()
        wait_for(report.exists, 30, what="the bomb to finish forking")
        made, refused = map(int, report.read_text().split())
        # While its children burn the CPU: the daemon and the other session still answer,
        # and the other session still gets its share of the CPU.
        beside = probe()
        latencies, pictures = [], []
        for _ in range(5):
            latencies.append(timed(lambda: api.get("/api/v1/sessions")))
            pictures.append(timed(lambda: api.get(f"/api/v1/sessions/{calm}/thumbnail?size=small")))
        running = len(user_pids(student.uid))
    print(f"bomb: {made} forks, {refused} refused, {running} processes; API {max(latencies):.3f} s, "
          f"thumbnail {max(pictures):.3f} s at worst; the other session's CPU {beside / alone:.0%} of "
          "what it had alone")
    assert refused > 0 and made < PIDS_MAX and running <= PIDS_MAX
    assert max(latencies) < API_BOUND_S and max(pictures) < API_BOUND_S
    assert beside > alone * 0.2  # one of two equal weights; one process among ~100 without them

    assert daemon.cli("logoff", bombed, "--force").returncode == 0
    wait_for(lambda: user_pids(student.uid) == [], 10, show=lambda: user_pids(student.uid))
    assert [(s["id"], s["state"]) for s in daemon.sessions()] == [(calm, "active")]


def test_a_memory_hog_is_stopped_inside_its_own_session(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory(extra_config=f'session_memory_max = "{MEMORY_MAX_MIB}M"')
    student, other = make_user("hog"), make_user("bia")
    go = attack_desktop(student, "hog", HOG,
                        '/usr/bin/python3 "$HOME/hog.py" 1024 "$HOME/hog.mib"; echo $? > "$HOME/hog.status"')
    hogged, calm = str(logon(daemon, student)["id"]), str(logon(daemon, other)["id"])
    status = Path(student.home) / "hog.status"
    go.touch()
    wait_for(status.exists, 60, what="the hog to end")
    reached = int((Path(student.home) / "hog.mib").read_text())
    print(f"hog: reached {reached} MiB, exit status {status.read_text().strip()}")
    assert status.read_text().strip() == "137"  # SIGKILL: the kernel's OOM killer, in its cgroup
    assert reached < MEMORY_MAX_MIB
    with socket_client(daemon) as api:
        assert timed(lambda: api.get("/api/v1/sessions")) < API_BOUND_S
        assert timed(lambda: api.get(f"/api/v1/sessions/{calm}/thumbnail?size=small")) < API_BOUND_S
    assert {s["id"]: s["state"] for s in daemon.sessions()} == {hogged: "active", calm: "active"}
    assert daemon.cli("logoff", hogged, "--force").returncode == 0
    wait_for(lambda: user_pids(student.uid) == [], 10)
