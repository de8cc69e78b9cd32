"""cgroup trees: where they are mounted, a session's directory in them, and the per-session
resource limits written there (processes, memory and CPU weight).

Each limit is written where this machine's kernel offers its controller, chosen once per backend:

- cgroup2, when the unified tree has the controller: ``pids.max``, ``memory.max`` (and
  ``memory.high`` a tenth below it, so a session is slowed down before it is killed) and
  ``cpu.weight`` in ``<mount>/polydesk/session-<key>``, the session's tracking cgroup; the
  controllers are switched on in ``polydesk/cgroup.subtree_control`` first;
- else a cgroup v1 hierarchy of the controller: ``pids.max``, ``memory.limit_in_bytes`` and
  ``cpu.shares`` in ``<v1 mount>/polydesk/session-<key>``, a cgroup that the session's
  processes join beside their tracking cgroup (``Tracker.join``, between fork and exec);
- else nowhere: said once in the log when the backend starts; the session runs without it.

Not RLIMIT_NPROC: the kernel counts it per real uid over the whole machine, so it would
count the user's SSH logins and cron jobs and every other session of theirs against
one session's limit, and it does not hold for root, whose helpers run in the session.

Sessions are siblings under ``polydesk/``, whose weight is one cgroup's: all sessions
together weigh as much as the daemon's own cgroup, and one session as much as any other.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_PARENT = "polydesk"
MOUNTS = Path("/proc/self/mounts")
CONTROLLERS = ("pids", "memory", "cpu")  # the limits, in the order they are placed
_V1_CONTROLLERS = ("freezer", "pids", "memory", "cpu")  # tracking, then limits


@dataclass(frozen=True)
class Mounts:
    """Where the cgroup filesystems are mounted on this machine."""

    cgroup2: Path | None
    v1: dict[str, Path]  # controller -> mount point (the ones Polydesk uses)

    @classmethod
    def read(cls, mounts: Path = MOUNTS) -> Mounts:
        cgroup2: Path | None = None
        v1: dict[str, Path] = {}
        for line in mounts.read_text().splitlines():
            fields = line.split()
            if len(fields) < 4:
                continue
            point, fstype, options = Path(_unescape(fields[1])), fields[2], fields[3].split(",")
            if fstype == "cgroup2" and cgroup2 is None:
                cgroup2 = point
            elif fstype == "cgroup":
                for option in options:
                    if option in _V1_CONTROLLERS:
                        v1.setdefault(option, point)
        return cls(cgroup2, v1)


def _unescape(text: str) -> str:
    """/proc/mounts writes spaces and the like as octal escapes."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


@dataclass(frozen=True)
class Limits:
    """What one session may use; 0 = no limit (the kernel's default)."""

    pids_max: int = 0
    memory_max: int = 0  # bytes
    cpu_weight: int = 0  # 1..10000, cgroup2's scale (100 is the kernel's default weight)

    def wanted(self, controller: str) -> bool:
        return {"pids": self.pids_max, "memory": self.memory_max, "cpu": self.cpu_weight}[controller] > 0

    def files(self, controller: str, version: int) -> list[tuple[str, str]]:
        """The files (and values) that set this limit in a cgroup of ``version``."""
        if controller == "pids":
            return [("pids.max", str(self.pids_max))]
        if controller == "memory":
            if version == 2:
                return [("memory.high", str(self.memory_max // 10 * 9)), ("memory.max", str(self.memory_max))]
            return [("memory.limit_in_bytes", str(self.memory_max))]
        if version == 2:
            return [("cpu.weight", str(self.cpu_weight))]
        return [("cpu.shares", str(max(2, self.cpu_weight * 1024 // 100)))]  # v1: 1024 is the default


@dataclass(frozen=True)
class Place:
    """Where one controller's limit is written: a cgroup mount and its version."""

    controller: str
    mount: Path
    version: int


@dataclass(frozen=True)
class LimitPlan:
    """A backend's choice, made once: which cgroup carries each limit."""

    limits: Limits
    places: tuple[Place, ...]

    def dirs(self, key: str) -> list[Path]:
        """The session's directories in every cgroup tree that carries one of its limits."""
        mounts = dict.fromkeys(place.mount for place in self.places)
        return [session_dir(mount, key) for mount in mounts]

    def apply(self, key: str) -> None:
        """Make the session's limit cgroups and write its limits, before its first process."""
        for directory in self.dirs(key):
            directory.mkdir(parents=True, exist_ok=True)
        for place in self.places:
            for name, value in self.limits.files(place.controller, place.version):
                (session_dir(place.mount, key) / name).write_text(value)


def session_dir(mount: Path, key: str) -> Path:
    return mount / CGROUP_PARENT / f"session-{key}"


def plan(limits: Limits, cgroup2: Path | None, v1: dict[str, Path]) -> LimitPlan:
    """Place every wanted limit: the unified tree first, then the controller's v1 hierarchy."""
    places = []
    for controller in CONTROLLERS:
        if not limits.wanted(controller):
            continue
        if cgroup2 is not None and _enable_v2(cgroup2, controller):
            places.append(Place(controller, cgroup2, 2))
        elif controller in v1 and _usable_v1(v1[controller]):
            places.append(Place(controller, v1[controller], 1))
        else:
            log.warning("no usable %s cgroup controller (neither cgroup2 nor v1): sessions run "
                        "without a %s limit", controller, controller)
    return LimitPlan(limits, tuple(places))


def _enable_v2(mount: Path, controller: str) -> bool:
    """Switch ``controller`` on for the sessions under ``<mount>/polydesk``; False if it cannot be."""
    try:
        if controller not in (mount / "cgroup.controllers").read_text().split():
            return False
        parent = mount / CGROUP_PARENT
        parent.mkdir(exist_ok=True)
        for level in (mount, parent):
            if controller not in (level / "cgroup.subtree_control").read_text().split():
                (level / "cgroup.subtree_control").write_text(f"+{controller}")
        return True
    except OSError as exc:
        log.info("cgroup2 %s controller not usable at %s: %s", controller, mount, exc)
        return False


def _usable_v1(mount: Path) -> bool:
    try:
        (mount / CGROUP_PARENT).mkdir(exist_ok=True)
        return True
    except OSError as exc:
        log.info("cgroup v1 hierarchy %s not usable: %s", mount, exc)
        return False


def remove_dir(path: Path, members: Callable[[], list[int]]) -> None:
    """rmdir a session's cgroup. An exiting process may hold it for a moment after its last
    signal; a zombie holds it until reaped, and where nobody reaps (an init that does not
    reap orphans) the empty directory is left: nothing of the session runs."""
    deadline = time.monotonic() + 1.0
    while True:
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            if time.monotonic() > deadline:
                if members():
                    raise
                log.warning("cgroup %s is held by unreaped zombies; left in place", path)
                return
            time.sleep(0.02)


def remove_all(key: str, mounts: list[Path], keep: Path | None,
               members: Callable[[Path], list[int]]) -> None:
    """Remove the session's limit cgroups from every cgroup tree (whichever daemon made them:
    after a restart the plan is gone, the directories are not); ``keep`` is the tracker's own."""
    for mount in mounts:
        directory = session_dir(mount, key)
        if directory != keep:
            with contextlib.suppress(FileNotFoundError):
                remove_dir(directory, functools.partial(members, directory))
