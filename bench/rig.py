"""The bench's room: a real daemon on temporary directories, real ``pdt-bench-*`` users,
their real Xvnc sessions, and what the bench reads of the processes (CPU, memory).

Every user's desktop is openbox with an xterm running ``top -d 1`` at the top-left
corner: a *busy* screen (top redraws its table every second). The bench makes the
same screens *idle* by stopping the tops (SIGSTOP): a still desktop, with no log-off
in between. The rest of the screen is the root window, which latency probes repaint.
For the full-screen workload the rig launches ``bench/painter.py`` in every session (as the
Dashboard's *Launch* does: as the session's user, in the session), and ends it after.

Everything the rig makes it removes, on any exit: sessions (logged off, then any
process of the users killed), users, directories.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests import harness
from tests.harness import Daemon, TestUser, user_pids

XSESSION = """#!/bin/sh
exec openbox --startup "xterm -geometry 80x24+0+0 -e top -d 1"
"""
PAINTER = Path(__file__).parent / "painter.py"
PYTHON = "/opt/polydesk/venv/bin/python"  # the installed venv: python-xlib and Pillow, readable by all
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Rig:
    sessions: int
    daemon: Daemon = field(init=False)
    users: list[TestUser] = field(default_factory=list)

    @property
    def pid(self) -> int:
        assert self.daemon.proc is not None
        return self.daemon.proc.pid

    def api(self, timeout: float = 120) -> httpx.Client:
        """The REST API on the Unix socket, as root (an administrator)."""
        return self.daemon.client("/api/v1", timeout)

    def token(self) -> str:
        with self.api() as api:
            answer = api.post("/tokens", json={"note": "bench dashboard"})
            answer.raise_for_status()
            return str(answer.json()["token"])

    def xauthority(self, session_id: str) -> Path:
        return self.daemon.runtime_dir / "sessions" / session_id / "Xauthority"

    # ------------------------------------------------------------ processes

    def daemon_cpu_s(self) -> float:
        """CPU time (user + system, every thread) the daemon has used so far."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICK

    def daemon_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def session_pss_mb(self) -> float:
        """Proportional memory of every process of the bench users (Xvnc, openbox, xterm,
        top), per session: shared pages count for their share only."""
        total_kb = 0
        for user in self.users:
            for pid in user_pids(user.uid):
                with contextlib.suppress(OSError):
                    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                        if line.startswith("Pss:"):
                            total_kb += int(line.split()[1])
        return total_kb / 1024 / max(1, len(self.users))

    def tops(self) -> list[int]:
        pids = []
        for user in self.users:
            for pid in user_pids(user.uid):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/comm").read_text().strip() == "top":
                        pids.append(pid)
        return pids

    def pause_tops(self, paused: bool) -> int:
        """Stop (idle screens) or continue (busy screens) every session's top; how many."""
        pids = self.tops()
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP if paused else signal.SIGCONT)
        return len(pids)

    @property
    def painter(self) -> Path:
        """Where the sessions' users read the painter: the daemon's scratch directory (0755)."""
        return self.daemon.state_dir.parent / PAINTER.name

    def start_painters(self, seconds: float) -> None:
        """Launch the full-screen painter in every session, for ``seconds`` at most."""
        if not self.painter.exists():
            shutil.copyfile(PAINTER, self.painter)
            self.painter.chmod(0o644)
        with self.api() as api:
            answer = api.post("/sessions/launch", json={
                "all": True, "argv": [PYTHON, str(self.painter), str(seconds)]})
            answer.raise_for_status()
        harness.wait_for(lambda: len(self.painters()) >= len(self.users), 60,
                         f"{len(self.users)} painters to run", show=lambda: f"{len(self.painters())} run")

    def painters(self) -> list[int]:
        pids = []
        for user in self.users:
            for pid in user_pids(user.uid):
                with contextlib.suppress(OSError):
                    if str(self.painter).encode() in Path(f"/proc/{pid}/cmdline").read_bytes():
                        pids.append(pid)
        return pids

    def stop_painters(self) -> None:
        for pid in self.painters():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        harness.wait_for(lambda: not self.painters(), 30, "the painters to end")

    def wait_desktops(self, timeout: float = 120) -> None:
        """Until every user's top runs (openbox started, xterm mapped)."""
        harness.wait_for(lambda: len(self.tops()) >= len(self.users), timeout,
                 f"{len(self.users)} desktops to come up", show=lambda: f"{len(self.tops())} came up")


@contextlib.contextmanager
def room(sessions: int) -> Iterator[Rig]:
    """A daemon and ``sessions`` bench users (no sessions yet); all removed afterwards."""
    rig = Rig(sessions)
    rig.daemon = harness.make_daemon_dirs()
    try:
        for number in range(sessions):
            user = harness.create_user(f"bench-{number}")
            rig.users.append(user)
            harness.write_xsession(user, XSESSION)
        rig.daemon.start()
        yield rig
    finally:
        rig.pause_tops(False)  # a stopped process would only die at SIGKILL
        harness.shutdown(rig.daemon)
        for user in rig.users:
            harness.remove_with_processes(user)
