"""Starting an application in an Xvnc session: the argument vector as given (never a shell), as
the user with their real supplementary groups, the session's environment, inside the session's
tracking (the child joins the cgroup between fork and exec: ``launch.spawn``), with no
capability and no descriptor of the daemon's (``close_fds``), in its own process session.
Listing and closing are ``backends.apps``'s.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from polydesk.backends.xvnc.launch import _base_env, spawn
from polydesk.backends.xvnc.record import Handle
from polydesk.core.model import Account, BackendError
from polydesk.system.tracking import Tracker


def session_env(handle: Handle, account: Account) -> dict[str, str]:
    """What a program started in the session sees: its display and cookie, its runtime
    directory, the D-Bus session bus when the desktop runs one there, HOME and the marker."""
    env = {
        **_base_env(handle, account),
        "DISPLAY": handle.display, "XAUTHORITY": handle.xauthority,
        "XDG_RUNTIME_DIR": handle.xdg_runtime_dir, "XDG_SESSION_TYPE": "x11",
    }
    bus = Path(handle.xdg_runtime_dir) / "bus"
    if bus.is_socket():
        env["DBUS_SESSION_BUS_ADDRESS"] = f"unix:path={bus}"
    return env


def launch(handle: Handle, account: Account, argv: list[str], tracker: Tracker,
           own: Callable[[subprocess.Popen[bytes]], None]) -> int:
    """Start ``argv`` in the session; its pid. Blocking (the backend runs it in a thread).
    ``own`` takes the child, to be reaped; the session's tracking ends it with the session."""
    if account.uid != handle.uid:
        raise BackendError(f"session {handle.session_id} is not {account.name}'s")
    home = Path(account.home)
    cwd = str(home) if home.is_dir() else "/"
    try:
        proc = spawn(argv, account, session_env(handle, account), cwd, tracker, handle.dir / "apps.log")
    except OSError as exc:
        raise BackendError(f"session {handle.session_id}: cannot start {argv[0]}: {exc}") from exc
    own(proc)
    return proc.pid


