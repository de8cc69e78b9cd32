"""Starting an application in one of the machine's own (logind) X11 sessions, as Polydesk does
in its own (``backends/xvnc/apps.py``): as the user, with their groups, the session's display
and the user's own cookie file, inside the session's systemd scope.

The scope (``session-<id>.scope``) is the session's tracking: what is started there ends with
the session, as logind ends it. Where the scope cannot be found (no systemd on the machine, a
leader outside it), or the session has no X display Polydesk reaches, or its cookie file is not
the user's own, nothing is started and the reason says why.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

from polydesk.backends.logind.dbus import SessionInfo
from polydesk.backends.logind.local import _cookie_for, _environments, _local_display
from polydesk.backends.xvnc.launch import spawn
from polydesk.core.model import Account, BackendError
from polydesk.system.cgroups import MOUNTS

KEPT = ("LANG", "LC_ALL", "XDG_SESSION_TYPE", "XDG_CURRENT_DESKTOP", "XDG_SESSION_DESKTOP", "DESKTOP_SESSION")


class Scope:
    """Joins the session's scope cgroups (every hierarchy that has it), between fork and exec."""

    def __init__(self, dirs: list[Path]) -> None:
        self.dirs = dirs
        self._procs = [os.fsencode(d / "cgroup.procs") for d in dirs]  # encoded now: join() runs after fork

    def join(self) -> None:
        for procs in self._procs:
            fd = os.open(procs, os.O_WRONLY)
            try:
                os.write(fd, b"0")
            finally:
                os.close(fd)


def scope_dirs(leader: int, logind_id: str) -> list[Path]:
    """The directories of the session's scope, from its leader's cgroups, in every mounted
    hierarchy that has it (cgroup2, and systemd's own v1 hierarchy on a hybrid machine)."""
    marker = f"/session-{logind_id}.scope"
    try:
        lines = Path(f"/proc/{leader}/cgroup").read_text().splitlines()
    except OSError:
        return []
    mounts = _mounts()
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if not path.endswith(marker):
            continue
        base = mounts.get(controllers or "cgroup2")
        if base is not None and (base / path.lstrip("/") / "cgroup.procs").exists():
            found.append(base / path.lstrip("/"))
    return found


def _mounts() -> dict[str, Path]:
    """Mount points by hierarchy: "cgroup2", and each v1 hierarchy by its options ("name=systemd")."""
    found: dict[str, Path] = {}
    for line in MOUNTS.read_text().splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        if fields[2] == "cgroup2":
            found.setdefault("cgroup2", Path(fields[1]))
        elif fields[2] == "cgroup":
            options = [o for o in fields[3].split(",") if o not in ("rw", "ro", "relatime", "nosuid",
                                                                        "nodev", "noexec")]
            found.setdefault(",".join(options), Path(fields[1]))
    return found


def session_env(info: SessionInfo, account: Account, display: str) -> dict[str, str]:
    """The session's environment for a program started in it: its display with the user's own
    cookie file (else BackendError), the user's runtime directory and D-Bus bus where they are."""
    wanted = _local_display(display)
    if wanted is None:
        raise BackendError(f"display {display!r} is not a local X display")
    for env in _environments(info):
        found = _local_display(env.get("DISPLAY", ""))
        path = env.get("XAUTHORITY", "")
        if found is None or found[1] != wanted[1] or _cookie_for(path, wanted[1], account.uid) is None:
            continue
        if os.stat(path).st_uid != account.uid:
            raise BackendError(f"the session's X cookie file {path} is not {account.name}'s own")
        out = {name: env[name] for name in KEPT if name in env}
        out.update(HOME=account.home, USER=account.name, LOGNAME=account.name,
                   SHELL=account.shell or "/bin/sh", PATH="/usr/local/bin:/usr/bin:/bin:/usr/games",
                   DISPLAY=display, XAUTHORITY=path)
        runtime = Path(f"/run/user/{account.uid}")
        if runtime.is_dir() and runtime.stat().st_uid == account.uid:
            out["XDG_RUNTIME_DIR"] = str(runtime)
            if (runtime / "bus").is_socket():
                out["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={runtime / 'bus'}"
        return out
    raise BackendError("the session's X display and cookie were not found in its processes")


def launch(info: SessionInfo, account: Account, display: str, argv: list[str], folder: Path,
           own: Callable[[subprocess.Popen[bytes]], None]) -> int:
    """Start ``argv`` in the session; its pid. Blocking (the backend runs it in a thread)."""
    if account.uid != info.uid:
        raise BackendError(f"logind session {info.id} is not {account.name}'s")
    dirs = scope_dirs(info.leader, info.id)
    if not dirs:
        raise BackendError(f"logind session {info.id}: its systemd scope (session-{info.id}.scope) was "
                           "not found, so a program started there would not end with the session")
    env = session_env(info, account, display)
    home = Path(account.home)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        proc = spawn(argv, account, env, str(home) if home.is_dir() else "/", Scope(dirs),
                     folder / "apps.log")
    except OSError as exc:
        raise BackendError(f"logind session {info.id}: cannot start {argv[0]}: {exc}") from exc
    own(proc)
    return proc.pid
