"""Starting a session: its files, its Xvnc on a free display, then its desktop.

Each session gets, under ``<runtime_dir>/sessions/<id>/`` (root, 0711):

- ``Xauthority``   a fresh MIT-MAGIC-COOKIE-1 (the user's, 0600): X access needs it;
- ``vnc/rfb.sock`` the RFB socket. Xvnc runs as the user, so it makes it in a directory
                   of theirs; once it listens, the directory and the socket become root's
                   (0700, 0600), so only the daemon's bridge reaches the session's RFB;
- ``xdg/``         the session's XDG_RUNTIME_DIR (the user's, 0700);
- ``helpers/``     one file per helper window process (root only: pids we may signal);
- ``*.log``        what Xvnc, the desktop and the helpers print.

Xvnc and the desktop run as the user, in their own session (``setsid``) so they outlive
the daemon, and inside the session's cgroup (see ``system.tracking``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from polydesk.backends.helpers import tail
from polydesk.backends.xvnc import display as files
from polydesk.backends.xvnc.end import end_session
from polydesk.backends.xvnc.record import Handle, write_record
from polydesk.core.model import Account, BackendError
from polydesk.core.screen import Server
from polydesk.system import peer, tracking
from polydesk.system import processes as procs
from polydesk.system.children import Children
from polydesk.system.x11 import xauth, xserver

# openbox starts the xterm itself once it manages the screen: an xterm started beside it
# can map its window before openbox looks, and then stays unmanaged (no frame, no focus).
DEFAULT_DESKTOP = ("openbox", "--startup", "xterm")
# What the daemon may change at run time through the VNC extension (block/unblock). Any X
# client of the display can change these too: the bridge enforces blocking on its own, and
# the block guard (``guard``) puts them back.
OVERRIDABLE = ("Desktop", "AcceptKeyEvents", "AcceptPointerEvents", "AcceptCutText",
               "SendCutText", "SendPrimary", "SetPrimary")
# What Xvnc says when a name of the display is already taken: try the next display.
TAKEN = ("already active", "server already running", "Cannot establish any listening sockets")
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL


class Launcher:
    """Starts sessions (blocking: the backend runs ``start`` in a thread)."""

    def __init__(self, runtime_dir: Path, desktop: Sequence[str], geometry: str, depth: int,
                 first_display: int, xvnc: str, start_timeout: float, chosen: tracking.Tracking,
                 children: Children) -> None:
        self.runtime_dir = runtime_dir
        self.desktop = list(desktop)
        self.geometry = geometry
        self.depth = depth
        self.first_display = first_display
        self.xvnc = xvnc
        self.start_timeout = start_timeout
        self.tracking = chosen
        self.children = children
        self._reserved: set[int] = set()  # display numbers being started right now
        self._reserve_lock = threading.Lock()

    def start(self, session_id: str, account: Account) -> Handle:
        """Make the files, start Xvnc, wait for it, start the desktop."""
        files.ensure_x11_unix()
        track_key = f"{session_id}-{secrets.token_hex(4)}"
        tracker = self.tracking.tracker(track_key)
        handle = self._prepare(session_id, account, tracker, track_key)
        try:
            handle = self._start_xvnc(handle, account, tracker)
            handle = self._start_desktop(handle, account, tracker)
            write_record(handle)
            return handle
        except BaseException:
            end_session(handle, 0.0, self.children.reap)
            raise

    def _prepare(self, session_id: str, account: Account, tracker: tracking.Tracker,
                 track_key: str) -> Handle:
        sessions = self.runtime_dir / "sessions"
        session_dir = sessions / session_id
        rfb_socket = session_dir / "vnc" / "rfb.sock"
        if len(os.fsencode(rfb_socket)) > MAX_SOCKET_PATH:
            raise BackendError(f"runtime directory path too long for a Unix socket: {rfb_socket}")
        _make_traversable(self.runtime_dir)
        files.make_dir(sessions, 0o711)
        if session_dir.exists():
            self._clear_stale(session_id, session_dir)
        try:
            tracker.create()
        except (tracking.TrackingError, OSError) as exc:
            raise BackendError(f"session {session_id}: {exc}") from exc
        chosen = self.tracking
        handle = Handle(
            session_id=session_id, user=account.name, uid=account.uid, gid=account.gid,
            display="", display_number=-1, session_dir=str(session_dir),
            xauthority=str(session_dir / "Xauthority"), rfb_socket=str(rfb_socket),
            xdg_runtime_dir=str(session_dir / "xdg"), boot_id=procs.boot_id(),
            tracking=str(chosen.mode), cgroup_base=str(chosen.base) if chosen.base else None,
            cgroup_controller=chosen.controller,
            cgroup=str(tracker.cgroup) if tracker.cgroup else None, track_key=track_key,
        )
        files.make_dir(session_dir, 0o711)
        files.make_dir(session_dir / "helpers", 0o700)  # records of helper windows: root only
        for private in (rfb_socket.parent, Path(handle.xdg_runtime_dir)):
            files.make_dir(private, 0o700, account.uid, account.gid)
        return handle

    def _clear_stale(self, session_id: str, session_dir: Path) -> None:
        """A directory left by a session whose end never ran (power cut, state lost)."""
        if self.tracking.tracker(session_id).pids():
            raise BackendError(f"session {session_id} still has processes from an earlier run")
        shutil.rmtree(session_dir)

    def _start_xvnc(self, handle: Handle, account: Account, tracker: tracking.Tracker) -> Handle:
        """Pick a free display and start Xvnc on it; retry if another server took it first."""
        last_error = ""
        for _attempt in range(5):
            number = self._reserve_display()
            try:
                started = self._try_xvnc(handle, number, account, tracker)
            finally:
                with self._reserve_lock:
                    self._reserved.discard(number)
            if isinstance(started, Handle):
                return started
            last_error = started
            if not any(words in started for words in TAKEN):
                break
        raise BackendError(f"Xvnc did not start for {account.name}: {last_error}")

    def _try_xvnc(self, handle: Handle, number: int, account: Account,
                  tracker: tracking.Tracker) -> Handle | str:
        """The started session's handle, or Xvnc's complaint if it exited."""
        cookie = xauth.new_cookie()
        xauthority = Path(handle.xauthority)
        xauthority.unlink(missing_ok=True)
        xauth.write_xauthority(xauthority, number, cookie, account.uid, account.gid)
        logfile = handle.dir / "xvnc.log"
        argv = [
            self.xvnc, f":{number}", "-auth", str(xauthority),
            "-nolisten", "tcp",  # the file socket and the abstract name, both held (see display.py)
            "-rfbport", "-1", "-rfbunixpath", handle.rfb_socket, "-rfbunixmode", "0600",
            "-SecurityTypes", "None",  # the socket is root's alone once secured
            # Only the daemon reaches the RFB socket: a blacklist could only lock it out.
            "-UseBlacklist=0",
            "-geometry", self.geometry, "-depth", str(self.depth), "-desktop", account.name,
            "-AlwaysShared", "-AllowOverride", ",".join(OVERRIDABLE),
        ]
        env = _base_env(handle, account)
        try:
            proc = spawn(argv, account, env, "/", tracker, logfile)
        except OSError as exc:
            raise BackendError(f"cannot run {self.xvnc}: {exc}") from exc
        self.children.own(proc)
        server = Server(proc.pid, procs.start_time(proc.pid))
        try:
            if not self._wait_ready(proc, f":{number}", cookie, server, logfile):
                return f"exit status {proc.returncode}: {tail(logfile)}"
            files.claim_names(number, server)
            files.secure_rfb(Path(handle.rfb_socket), proc, self.start_timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            files.remove_display_files(number, proc.pid)  # a killed X server leaves them behind
            raise
        return handle.with_(display=f":{number}", display_number=number, xvnc_pid=proc.pid,
                            xvnc_start=server.start)

    def _wait_ready(self, proc: subprocess.Popen[bytes], display: str, cookie: bytes,
                    server: Server, logfile: Path) -> bool:
        """Poll until the display accepts our cookie (True) or Xvnc exits (False)."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            if proc.poll() is not None:
                return False
            # Another X server on the number (another daemon got there first): ours is about
            # to exit with "server already running", and the next number is tried.
            with contextlib.suppress(peer.PeerError):
                if xserver.handshake(display, cookie, server):
                    return True
            if time.monotonic() > deadline:
                raise BackendError(f"Xvnc {display} not ready after {self.start_timeout} s: {tail(logfile)}")
            time.sleep(0.005)

    def _reserve_display(self) -> int:
        with self._reserve_lock:
            abstract = files.abstract_x_sockets()
            number = self.first_display
            while number in self._reserved or not files.display_free(number, abstract):
                number += 1
            self._reserved.add(number)
            return number

    def _start_desktop(self, handle: Handle, account: Account, tracker: tracking.Tracker) -> Handle:
        home = Path(account.home)
        xsession = home / ".xsession"
        argv = [str(xsession)] if _executable(xsession) else self.desktop
        env = {
            **_base_env(handle, account),
            "DISPLAY": handle.display, "XAUTHORITY": handle.xauthority,
            "XDG_RUNTIME_DIR": handle.xdg_runtime_dir, "XDG_SESSION_TYPE": "x11",
        }
        cwd = str(home) if home.is_dir() else "/"
        try:
            proc = spawn(argv, account, env, cwd, tracker, handle.dir / "desktop.log")
        except OSError as exc:
            raise BackendError(f"cannot start the desktop {argv[0]} for {account.name}: {exc}") from exc
        self.children.own(proc)
        return handle.with_(desktop_pid=proc.pid, desktop_start=procs.start_time(proc.pid))


def _base_env(handle: Handle, account: Account) -> dict[str, str]:
    return {
        "HOME": account.home, "USER": account.name, "LOGNAME": account.name,
        "SHELL": account.shell or "/bin/sh",
        "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/games",
        "LANG": os.environ.get("LANG", "C.UTF-8"),
        tracking.MARKER_VAR: handle.track_key or handle.session_id,
    }


class Joins(Protocol):
    """What a child enters between fork and exec: a session's Tracker, or a logind scope."""

    def join(self) -> None: ...


def spawn(argv: Sequence[str], account: Account, env: dict[str, str], cwd: str,
          tracker: Joins, logfile: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` as the account, in its own session, inside the session's tracking.

    The child joins the cgroup and only then drops privileges (Popen's user=/group= would
    drop them before preexec_fn runs, and a user may not move itself between cgroups).
    """
    groups = os.getgrouplist(account.name, account.gid)  # NSS lookups stay in the parent
    uid, gid = account.uid, account.gid

    def enter_session() -> None:
        tracker.join()
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        os.umask(0o022)

    out = _open_log(logfile, uid, gid)
    try:
        return subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env, cwd=cwd,
            start_new_session=True, preexec_fn=enter_session, close_fds=True,
        )
    finally:
        os.close(out)


def _make_traversable(path: Path) -> None:
    """Users must reach their session directory below it (execute bit only, no listing)."""
    path.mkdir(parents=True, exist_ok=True)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o011 != 0o011:
        path.chmod(mode | 0o011)


def _open_log(path: Path, uid: int, gid: int) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    os.fchown(fd, uid, gid)
    return fd


def _executable(path: Path) -> bool:
    try:
        info = path.stat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and bool(info.st_mode & 0o111)
