"""Know every process of a session, and end them all.

A session's processes are tracked one of three ways, chosen once per backend:

- ``cgroup2``: a cgroup v2 directory per session (``<mount>/polydesk/session-<id>``);
  ending writes ``cgroup.kill``, which the kernel applies atomically, forks in flight included.
- ``cgroup1``: a cgroup v1 directory in the ``freezer`` hierarchy (else ``pids``);
  ending freezes the group, SIGKILLs every member and thaws it, so nothing can fork meanwhile.
- ``marker``: no usable cgroup. Every process inherits ``POLYDESK_SESSION=<id>`` in its
  environment; members are found by scanning ``/proc/*/environ`` plus the process tree
  under the session's leaders. A process that both leaves the tree (double fork) and
  clears its environment escapes this mode; the cgroup modes have no such hole.

The cgroup a child joins is written from the child itself between fork and exec
(``Tracker.join``), before it drops privileges, so not even its first fork escapes.
The same step joins the cgroups that carry the session's limits where they are not the
tracking cgroup itself (``cgroups``: cgroup v1 ``pids``, ``memory``, ``cpu``).

Everything here is synchronous and short; the async backend runs it in a thread.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import os
import re
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from polydesk.system import cgroups
from polydesk.system.cgroups import LimitPlan, Mounts
from polydesk.system.processes import all_pids, is_running, live, send, stat_fields

MARKER_VAR = "POLYDESK_SESSION"
CGROUP_PARENT = cgroups.CGROUP_PARENT
_SESSION_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")

log = logging.getLogger(__name__)


class TrackingMode(enum.StrEnum):
    """How a backend finds a session's processes (the ``tracking`` setting, less "auto")."""

    CGROUP2 = "cgroup2"
    CGROUP1 = "cgroup1"
    MARKER = "marker"


class TrackingError(Exception):
    """The requested tracking mode cannot be used on this machine."""


# ---------------------------------------------------------------- trackers


class Tracker(ABC):
    """The processes of one session, however they are tracked, and the cgroups of its limits."""

    mode: TrackingMode

    def __init__(self, session_id: str) -> None:
        if not _SESSION_ID.fullmatch(session_id):
            raise ValueError(f"session id unfit for a cgroup or marker: {session_id!r}")
        self.session_id = session_id
        self.limits: LimitPlan | None = None
        self._limit_procs: list[bytes] = []  # cgroup.procs of the limit cgroups join() enters

    @property
    def cgroup(self) -> Path | None:
        return None

    def limited(self, plan: LimitPlan | None) -> Tracker:
        """Give the session's processes ``plan``'s limits (set up by create, entered by join)."""
        self.limits = plan
        dirs = plan.dirs(self.session_id) if plan else []
        # Encoded now: join() runs after fork and must not build Python paths.
        self._limit_procs = [os.fsencode(d / "cgroup.procs") for d in dirs if d != self.cgroup]
        return self

    def create(self) -> None:
        """Prepare tracking (and the limits) before the first process starts."""
        self._create()
        if self.limits is not None:
            self.limits.apply(self.session_id)

    def join(self) -> None:
        """Run in the child between fork and exec, as root: enter the session and its limits.

        Only raw system calls here: the child of a threaded parent must not take locks.
        """
        self._join()
        for procs in self._limit_procs:
            _enter(procs)

    def remove(self) -> None:
        """Forget the session's tracking state and its limit cgroups."""
        self._remove()
        mounts = Mounts.read()
        trees = [*([mounts.cgroup2] if mounts.cgroup2 else []), *dict.fromkeys(mounts.v1.values())]
        cgroups.remove_all(self.session_id, trees, self.cgroup, _members)

    @abstractmethod
    def _create(self) -> None: ...

    @abstractmethod
    def _join(self) -> None: ...

    @abstractmethod
    def _remove(self) -> None: ...

    @abstractmethod
    def pids(self) -> list[int]:
        """Every live process of the session."""

    def terminate(self) -> None:
        """SIGTERM every process (and SIGCONT, so a stopped one gets it too)."""
        pids = self.pids()
        send(pids, signal.SIGTERM)
        send(pids, signal.SIGCONT)

    @abstractmethod
    def kill(self, timeout: float = 5.0) -> list[int]:
        """SIGKILL everything, forks in flight included; return the pids still alive."""

    def marker_env(self) -> dict[str, str]:
        """The marker every process carries, whatever the mode: it costs nothing and helps debugging."""
        return {MARKER_VAR: self.session_id}


def _enter(procs: bytes) -> None:
    """Move the calling process into the cgroup whose cgroup.procs is ``procs``."""
    fd = os.open(procs, os.O_WRONLY)
    try:
        os.write(fd, b"0")  # 0 = the writing process itself
    finally:
        os.close(fd)


def _members(cgroup: Path) -> list[int]:
    try:
        text = (cgroup / "cgroup.procs").read_text()
    except FileNotFoundError:
        return []
    return live(int(line) for line in text.split())


class _CgroupTracker(Tracker):
    """Shared by both cgroup versions: a directory whose cgroup.procs lists the members."""

    def __init__(self, session_id: str, base: Path) -> None:
        super().__init__(session_id)
        self.path = base / CGROUP_PARENT / f"session-{session_id}"
        # Encoded now: join() runs after fork and must not build Python paths.
        self._procs = os.fsencode(self.path / "cgroup.procs")

    @property
    def cgroup(self) -> Path | None:
        return self.path

    def _create(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        if self.pids():
            raise TrackingError(f"cgroup {self.path} is still in use by an earlier session")

    def _join(self) -> None:
        _enter(self._procs)

    def pids(self) -> list[int]:
        return _members(self.path)

    def _remove(self) -> None:
        cgroups.remove_dir(self.path, self.pids)

    def _kill_loop(self, deadline: float) -> list[int]:
        """SIGKILL whatever is listed until the group is empty or time is up."""
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > deadline:
                return pids
            send(pids, signal.SIGKILL)
            time.sleep(0.01)

    def _read(self, name: str) -> str | None:
        try:
            return (self.path / name).read_text().strip()
        except FileNotFoundError:
            return None

    def _write(self, name: str, value: str) -> None:
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: nothing left to act on
            (self.path / name).write_text(value)


class Cgroup2Tracker(_CgroupTracker):
    mode = TrackingMode.CGROUP2

    def kill(self, timeout: float = 5.0) -> list[int]:
        deadline = time.monotonic() + timeout
        if not self.path.exists():
            return []
        if (self.path / "cgroup.kill").exists():
            self._write("cgroup.kill", "1")
        else:  # kernels before 5.14: freeze, kill, thaw, as with v1
            self._write("cgroup.freeze", "1")
            send(self.pids(), signal.SIGKILL)
            self._write("cgroup.freeze", "0")
        return self._kill_loop(deadline)


class Cgroup1Tracker(_CgroupTracker):
    mode = TrackingMode.CGROUP1

    def __init__(self, session_id: str, base: Path, controller: str) -> None:
        super().__init__(session_id, base)
        self.controller = controller

    def kill(self, timeout: float = 5.0) -> list[int]:
        deadline = time.monotonic() + timeout
        if not self.path.exists():
            return []
        if self.controller == "freezer":
            self._frozen_kill(deadline)
        else:
            self._write("pids.max", "0")  # no more forks in the group: the loop below wins
        return self._kill_loop(deadline)

    def _frozen_kill(self, deadline: float) -> None:
        """A frozen group cannot fork, so one SIGKILL per member ends it for good."""
        self._write("freezer.state", "FROZEN")
        give_up = min(deadline, time.monotonic() + 1.0)
        while self._read("freezer.state") not in ("FROZEN", None):
            if time.monotonic() > give_up:
                break  # a task stuck in the kernel; the kill loop after the thaw still runs
            time.sleep(0.005)
        send(self.pids(), signal.SIGKILL)
        self._write("freezer.state", "THAWED")


class MarkerTracker(Tracker):
    """No cgroup: the environment marker plus the process tree under the session's leaders."""

    mode = TrackingMode.MARKER

    def __init__(self, session_id: str, leaders: Iterable[tuple[int, int]] = ()) -> None:
        super().__init__(session_id)
        self._needle = f"{MARKER_VAR}={session_id}".encode() + b"\0"
        self.leaders: list[tuple[int, int]] = list(leaders)

    # The marker travels in the environment the backend builds: nothing to make, join or remove.
    def _create(self) -> None:
        return None

    def _join(self) -> None:
        return None

    def _remove(self) -> None:
        return None

    def pids(self) -> list[int]:
        parents: dict[int, int] = {}
        found: set[int] = set()
        for pid in all_pids():
            stat = stat_fields(pid)
            if stat is None:
                continue
            parents[pid] = int(stat[1])
            if self._marked(pid):
                found.add(pid)
        roots = {pid for pid, started in self.leaders if is_running(pid, started)}
        return live(found | _descendants(roots | found, parents))

    def _marked(self, pid: int) -> bool:
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:  # gone, or a kernel thread
            return False
        return environ.startswith(self._needle) or (b"\0" + self._needle) in environ

    def kill(self, timeout: float = 5.0) -> list[int]:
        """Stop first, then kill: a stopped process cannot fork a replacement meanwhile."""
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids or time.monotonic() > deadline:
                return pids
            send(pids, signal.SIGSTOP)
            send(pids, signal.SIGKILL)
            time.sleep(0.01)


def _descendants(roots: set[int], parents: dict[int, int]) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, ppid in parents.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
    return seen


# ---------------------------------------------------------------- choosing


@dataclass(frozen=True)
class Tracking:
    """A backend's choice of mode, and where its cgroups live; makes a Tracker per session."""

    mode: TrackingMode
    base: Path | None = None  # the cgroup mount holding <base>/polydesk/
    controller: str | None = None  # cgroup v1 only
    # Where new sessions' limits go (cgroups.plan). Not kept with a session: its limits
    # are written once, at its start, and its limit cgroups are found again by name.
    limits: LimitPlan | None = field(default=None, compare=False)

    def tracker(self, session_id: str, leaders: Iterable[tuple[int, int]] = ()) -> Tracker:
        tracker: Tracker
        if self.mode == TrackingMode.CGROUP2:
            assert self.base is not None
            tracker = Cgroup2Tracker(session_id, self.base)
        elif self.mode == TrackingMode.CGROUP1:
            assert self.base is not None and self.controller is not None
            tracker = Cgroup1Tracker(session_id, self.base, self.controller)
        else:
            tracker = MarkerTracker(session_id, leaders)
        return tracker.limited(self.limits)

    def as_data(self) -> dict[str, str | None]:
        return {"tracking": str(self.mode), "cgroup_base": str(self.base) if self.base else None,
                "cgroup_controller": self.controller}

    @classmethod
    def from_data(cls, data: dict[str, object]) -> Tracking:
        base = data.get("cgroup_base")
        controller = data.get("cgroup_controller")
        return cls(TrackingMode(str(data["tracking"])), Path(str(base)) if base else None,
                   str(controller) if controller else None)


def choose(requested: str = "auto", mounts: Mounts | None = None,
           limits: cgroups.Limits | None = None) -> Tracking:
    """The best mode this machine offers, or exactly ``requested`` (TrackingError if impossible),
    with ``limits`` placed where this machine's controllers are (cgroups.plan)."""
    if requested not in ("auto", *TrackingMode):
        raise TrackingError(f"unknown process tracking mode {requested!r}: auto, cgroup2, cgroup1, marker")
    mounts = mounts or Mounts.read()
    order = list(TrackingMode) if requested == "auto" else [TrackingMode(requested)]
    reasons = []
    for mode in order:
        try:
            tracking = _probe(mode, mounts)
        except (TrackingError, OSError) as exc:
            reasons.append(f"{mode}: {exc}")
            continue
        if limits is None:
            return tracking
        return dataclasses.replace(tracking, limits=cgroups.plan(limits, mounts.cgroup2, mounts.v1))
    raise TrackingError("; ".join(reasons))


def _probe(mode: TrackingMode, mounts: Mounts) -> Tracking:
    """Check that ``mode`` works here: its parent directory can be made and has what we need."""
    if mode == TrackingMode.MARKER:
        return Tracking(mode)
    if mode == TrackingMode.CGROUP2:
        if mounts.cgroup2 is None:
            raise TrackingError("no cgroup2 filesystem mounted")
        parent = _make_parent(mounts.cgroup2)
        if not (parent / "cgroup.kill").exists():
            raise TrackingError(f"{parent} has no cgroup.kill (kernel older than 5.14)")
        return Tracking(mode, mounts.cgroup2)
    for controller in ("freezer", "pids"):
        if controller in mounts.v1:
            _make_parent(mounts.v1[controller])
            return Tracking(mode, mounts.v1[controller], controller)
    raise TrackingError("no cgroup v1 freezer or pids hierarchy mounted")


def _make_parent(mount: Path) -> Path:
    parent = mount / CGROUP_PARENT
    parent.mkdir(exist_ok=True)
    return parent
