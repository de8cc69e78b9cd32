"""What a test leaves behind: processes of this test run still running, asyncio tasks still pending.

A process is this run's when any of these holds:

- it descends from the test run (pytest, or the bench);
- it runs as a ``pdt-`` account this run created (``claim_uid``): a session's processes, re-parented
  to PID 1 once the daemon that started them was killed;
- its environment carries this run's mark (``PDT_TEST_RUN``, see ``mark_run``): whatever the tests
  start inherits it, a daemon's own children too unless it gives them a fresh environment;
- its command line names a directory this run made (``claim_dir``): a session's root helper windows,
  which get a fresh environment, name their display's cookie in the daemon's runtime directory.

The suite runs beside other runs on the same machine (every engineer's); their processes are none
of these. Nothing here needs pytest: the checks return what they found and the fixtures fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

MARK_VAR = "PDT_TEST_RUN"

_uids: set[int] = set()
_dirs: set[str] = set()


def mark_run(fresh: bool = False) -> str:
    """Mark this process's environment (so every child's) as this test run's; the mark. ``fresh``:
    a new mark even if one was inherited (a pytest-xdist worker: the run is its own, not its
    siblings', which inherited the same environment)."""
    if fresh:
        os.environ[MARK_VAR] = f"{os.getpid()}-{secrets.token_hex(4)}"
    return os.environ.setdefault(MARK_VAR, f"{os.getpid()}-{secrets.token_hex(4)}")


def claim_uid(uid: int) -> None:
    """Processes of ``uid`` (an account this run made) are this run's, even once it is removed."""
    _uids.add(uid)


def claim_dir(path: Path) -> None:
    """A process whose command line names ``path`` is this run's."""
    _dirs.add(str(path))


@dataclass(frozen=True)
class Process:
    pid: int
    started: int  # clock ticks after boot: with the pid, one process for good
    uid: int
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} uid {self.uid}: {self.command[:160]}"


Snapshot = dict[tuple[int, int], Process]


def processes() -> Snapshot:
    """This run's live processes (zombies are dead, only not reaped: they do not count)."""
    me, table, children = os.getpid(), {}, defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            uid = os.stat(f"/proc/{entry}").st_uid
        except (OSError, IndexError):
            continue  # gone meanwhile
        pid = int(entry)
        children[int(fields[1])].append(pid)
        if fields[0] not in ("Z", "X"):
            table[pid] = (int(fields[19]), uid)
    descendants, todo = set(), list(children[me])
    while todo:
        pid = todo.pop()
        descendants.add(pid)
        todo.extend(children[pid])
    mark = os.environ.get(MARK_VAR)
    found: Snapshot = {}
    for pid, (started, uid) in table.items():
        if pid == me:
            continue
        command = _read(pid, "cmdline").replace(b"\0", b" ").decode(errors="replace").strip()
        if (pid in descendants or uid in _uids or any(d in command for d in _dirs)
                or (mark is not None and _marked(pid, mark))):
            found[(pid, started)] = Process(pid, started, uid, command)
    return found


def _read(pid: int, name: str) -> bytes:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:  # gone, a kernel thread, or not ours to read
        return b""


def _marked(pid: int, mark: str) -> bool:
    needle = f"{MARK_VAR}={mark}\0".encode()
    environ = _read(pid, "environ")
    return environ.startswith(needle) or b"\0" + needle in environ


def left_behind(before: Snapshot, settle: float = 5.0) -> list[Process]:
    """This run's processes that were not there ``before``, after up to ``settle`` seconds for
    the ones on their way out to go."""
    deadline = time.monotonic() + settle
    while True:
        left = [p for key, p in processes().items() if key not in before]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kill(left: list[Process]) -> None:
    """SIGKILL each of ``left`` that is still the same process."""
    now = processes()
    for process in left:
        if (process.pid, process.started) in now:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)


# ---------------------------------------------------------------- asyncio tasks


def tasks_left(loop: asyncio.AbstractEventLoop, before: set[asyncio.Task[object]],
               settle: float = 1.0) -> list[asyncio.Task[object]]:
    """Tasks of ``loop`` (not running) still pending that were not there ``before``, after the loop
    ran up to ``settle`` seconds for those already told to end (cancelled, not yet awaited)."""
    deadline = time.monotonic() + settle
    while True:
        left = [t for t in asyncio.all_tasks(loop) if not t.done() and t not in before]
        if not left or time.monotonic() > deadline:
            return left
        loop.run_until_complete(asyncio.sleep(0.02))


def describe(task: asyncio.Task[object]) -> str:
    """The task's name, its coroutine and where it waits."""
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", repr(coro))
    frames = task.get_stack()
    where = f" at {frames[-1].f_code.co_filename}:{frames[-1].f_lineno}" if frames else ""
    return f"{task.get_name()} ({name}){where}"
