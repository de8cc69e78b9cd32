"""The built-in session host: one TigerVNC ``Xvnc`` and one desktop per session.

Each session gets, under ``<runtime_dir>/sessions/<id>/`` (root, 0711):

- ``Xauthority``   a fresh MIT-MAGIC-COOKIE-1 (the user's, 0600): X access needs it;
- ``vnc/rfb.sock`` the RFB socket. Xvnc runs as the user, so it makes it in a directory
                   of theirs; once it listens, the directory and the socket become root's
                   (0700, 0600), so only the daemon's bridge reaches the session's RFB;
- ``xdg/``         the session's XDG_RUNTIME_DIR (the user's, 0700);
- ``helpers/``     one file per helper window process (root only: pids we may signal);
- ``*.log``        what Xvnc, the desktop and the helpers print.

Xvnc listens on no TCP port. It holds both names of its display, the file socket and
the abstract one, and the daemon checks that it does: a name left free is one another
local user could bind, and every X client tries the abstract name first (issue 13). It
and the desktop run as the user, in their own session (``setsid``) so they outlive the daemon, and inside the
session's cgroup (see ``processes``). Everything needed to find them again after a
daemon restart is returned in ``Started.data``; pids are always paired with their
start time so a reused pid is never mistaken for ours.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

from polydesk.backends.base import Recovered, Started
from polydesk.backends.helpers import helper_language, helpers, spawn_helper, stop_helpers, tail
from polydesk.core.model import Account, BackendError, EndReason, Session
from polydesk.core.screen import Endpoint, Screen, Server
from polydesk.system import peer
from polydesk.system import processes as procs
from polydesk.system.cgroups import Limits
from polydesk.system.x11 import client as x11
from polydesk.system.x11 import xauth, xserver

log = logging.getLogger(__name__)

# openbox starts the xterm itself once it manages the screen: an xterm started beside it
# can map its window before openbox looks, and then stays unmanaged (no frame, no focus).
DEFAULT_DESKTOP = ("openbox", "--startup", "xterm")
# What the daemon may change at run time through the VNC extension (block/unblock). Any X
# client of the display can change these too: the bridge enforces blocking on its own, and
# the block guard (``guard``) puts them back.
OVERRIDABLE = ("Desktop", "AcceptKeyEvents", "AcceptPointerEvents", "AcceptCutText",
               "SendCutText", "SendPrimary", "SetPrimary")
BLOCK_SETTINGS = ("AcceptKeyEvents", "AcceptPointerEvents", "AcceptCutText")
LOCK_FILE = "/tmp/.X{}-lock"
# What Xvnc says when a name of the display is already taken: try the next display.
TAKEN = ("already active", "server already running", "Cannot establish any listening sockets")
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the final NUL
_LEFT_RUNNING: list[subprocess.Popen[bytes]] = []  # see XvncBackend.close
T = TypeVar("T")


# ---------------------------------------------------------------- the session's record


@dataclass(frozen=True)
class Handle:
    """Everything about one running session; stored as Session.host_data (JSON)."""

    session_id: str
    user: str
    uid: int
    gid: int
    display: str
    display_number: int
    session_dir: str
    xauthority: str
    rfb_socket: str
    xdg_runtime_dir: str
    boot_id: str
    tracking: str
    cgroup_base: str | None
    cgroup_controller: str | None
    cgroup: str | None
    xvnc_pid: int | None = None
    xvnc_start: int | None = None
    desktop_pid: int | None = None
    desktop_start: int | None = None
    # Names the session's cgroup and marker. Unique per start, so two daemons on one
    # machine (tests, a restored state directory) never share a cgroup for "session 1".
    track_key: str = ""

    def to_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_session(cls, session: Session) -> Handle:
        data = session.backend_data
        try:
            return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})
        except TypeError as exc:
            raise BackendError(f"session {session.id} has no usable Xvnc host data: {exc}") from exc

    @property
    def dir(self) -> Path:
        return Path(self.session_dir)

    @property
    def helpers_dir(self) -> Path:
        return self.dir / "helpers"

    def tracker(self) -> procs.Tracker:
        tracking = procs.Tracking.from_data(asdict(self))
        return tracking.tracker(self.track_key or self.session_id, self.leaders())

    def leaders(self) -> list[tuple[int, int]]:
        return [(pid, started) for pid, started in ((self.xvnc_pid, self.xvnc_start),
                                                     (self.desktop_pid, self.desktop_start))
                if pid is not None and started is not None]

    def same_boot(self) -> bool:
        return self.boot_id == procs.boot_id()

    def xvnc_running(self) -> bool:
        return (self.xvnc_pid is not None and self.same_boot()
                and procs.is_running(self.xvnc_pid, self.xvnc_start))


# ---------------------------------------------------------------- the host


class XvncBackend:
    """The SessionBackend that runs sessions in TigerVNC Xvnc servers on this machine."""

    name = "xvnc"

    def __init__(
        self,
        runtime_dir: Path,
        desktop: Sequence[str] | None = None,
        geometry: str = "1280x800",
        depth: int = 24,
        first_display: int = 10,
        tracking: str = "auto",
        xvnc: str = "Xvnc",
        start_timeout: float = 10.0,
        limits: Limits | None = None,
    ) -> None:
        if depth not in (24, 32):
            raise ValueError(f"depth must be 24 or 32 (the helper windows draw 32-bit pixels), not {depth}")
        self.runtime_dir = Path(runtime_dir)
        self.desktop = list(desktop or DEFAULT_DESKTOP)
        self.geometry = geometry
        self.depth = depth
        self.first_display = first_display
        self.xvnc = xvnc
        self.start_timeout = start_timeout
        try:
            self.tracking = procs.choose(tracking, limits=limits)  # limits: each session's cgroups
        except procs.TrackingError as exc:
            raise BackendError(f"cannot track session processes: {exc}") from exc
        self._reserved: set[int] = set()  # display numbers being started right now
        self._reserve_lock = threading.Lock()
        self._children: dict[int, subprocess.Popen[bytes]] = {}  # ours to reap
        self._children_lock = threading.Lock()  # start() and end() work in threads
        self._pidfds: dict[int, int] = {}  # child pid -> pidfd watched by the loop
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ start

    async def start(self, session_id: str, account: Account) -> Started:
        self._loop = asyncio.get_running_loop()
        work = asyncio.ensure_future(asyncio.to_thread(self._start, session_id, account))
        try:
            handle = await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(self._abandon)  # the thread finishes anyway: end what it made
            raise
        except (OSError, ValueError) as exc:  # a bad session id, a full disk, a missing binary
            raise BackendError(f"cannot start session {session_id} for {account.name}: {exc}") from exc
        for pid in (handle.xvnc_pid, handle.desktop_pid):
            if pid is not None:
                self._watch_child(pid)
        return Started(display=handle.display, data=handle.to_data())

    def _abandon(self, work: asyncio.Future[Handle]) -> None:
        if not work.cancelled() and work.exception() is None:
            threading.Thread(target=self._end, args=(work.result(), 0.0), daemon=True).start()

    def _start(self, session_id: str, account: Account) -> Handle:
        """Blocking: make the files, start Xvnc, wait for it, start the desktop."""
        ensure_x11_unix()
        track_key = f"{session_id}-{secrets.token_hex(4)}"
        tracker = self.tracking.tracker(track_key)
        handle = self._prepare(session_id, account, tracker, track_key)
        try:
            handle = self._start_xvnc(handle, account, tracker)
            handle = self._start_desktop(handle, account, tracker)
            _write_record(handle)
            return handle
        except BaseException:
            self._end(handle, 0.0)
            raise

    def _prepare(self, session_id: str, account: Account, tracker: procs.Tracker,
                 track_key: str) -> Handle:
        sessions = self.runtime_dir / "sessions"
        session_dir = sessions / session_id
        rfb_socket = session_dir / "vnc" / "rfb.sock"
        if len(os.fsencode(rfb_socket)) > MAX_SOCKET_PATH:
            raise BackendError(f"runtime directory path too long for a Unix socket: {rfb_socket}")
        _make_traversable(self.runtime_dir)
        _make_dir(sessions, 0o711)
        if session_dir.exists():
            self._clear_stale(session_id, session_dir)
        try:
            tracker.create()
        except (procs.TrackingError, OSError) as exc:
            raise BackendError(f"session {session_id}: {exc}") from exc
        tracking = self.tracking
        handle = Handle(
            session_id=session_id, user=account.name, uid=account.uid, gid=account.gid,
            display="", display_number=-1, session_dir=str(session_dir),
            xauthority=str(session_dir / "Xauthority"), rfb_socket=str(rfb_socket),
            xdg_runtime_dir=str(session_dir / "xdg"), boot_id=procs.boot_id(),
            tracking=str(tracking.mode), cgroup_base=str(tracking.base) if tracking.base else None,
            cgroup_controller=tracking.controller,
            cgroup=str(tracker.cgroup) if tracker.cgroup else None, track_key=track_key,
        )
        _make_dir(session_dir, 0o711)
        _make_dir(handle.helpers_dir, 0o700)
        for private in (rfb_socket.parent, Path(handle.xdg_runtime_dir)):
            _make_dir(private, 0o700, account.uid, account.gid)
        return handle

    def _clear_stale(self, session_id: str, session_dir: Path) -> None:
        """A directory left by a session whose end never ran (power cut, state lost)."""
        if self.tracking.tracker(session_id).pids():
            raise BackendError(f"session {session_id} still has processes from an earlier run")
        shutil.rmtree(session_dir)

    def _start_xvnc(self, handle: Handle, account: Account, tracker: procs.Tracker) -> Handle:
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
                  tracker: procs.Tracker) -> Handle | str:
        """The started session's handle, or Xvnc's complaint if it exited."""
        cookie = xauth.new_cookie()
        xauthority = Path(handle.xauthority)
        xauthority.unlink(missing_ok=True)
        xauth.write_xauthority(xauthority, number, cookie, account.uid, account.gid)
        logfile = handle.dir / "xvnc.log"
        argv = [
            self.xvnc, f":{number}", "-auth", str(xauthority),
            "-nolisten", "tcp",  # the file socket and the abstract name, both held (see above)
            "-rfbport", "-1", "-rfbunixpath", handle.rfb_socket, "-rfbunixmode", "0600",
            "-SecurityTypes", "None",  # the socket is root's alone once secured
            # Only the daemon reaches the RFB socket: a blacklist could only lock it out.
            "-UseBlacklist=0",
            "-geometry", self.geometry, "-depth", str(self.depth), "-desktop", account.name,
            "-AlwaysShared", "-AllowOverride", ",".join(OVERRIDABLE),
        ]
        env = self._base_env(handle, account)
        try:
            proc = _spawn(argv, account, env, "/", tracker, logfile)
        except OSError as exc:
            raise BackendError(f"cannot run {self.xvnc}: {exc}") from exc
        self._own(proc)
        server = Server(proc.pid, procs.start_time(proc.pid))
        try:
            if not self._wait_ready(proc, f":{number}", cookie, server, logfile):
                return f"exit status {proc.returncode}: {tail(logfile)}"
            _claim_names(number, server)
            _secure_rfb(Path(handle.rfb_socket), proc, self.start_timeout)
        except BaseException:
            proc.kill()
            proc.wait()
            _remove_display_files(number, proc.pid)  # a killed X server leaves them behind
            raise
        return _with(handle, display=f":{number}", display_number=number, xvnc_pid=proc.pid,
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
            abstract = _abstract_x_sockets()
            number = self.first_display
            while number in self._reserved or not _display_free(number, abstract):
                number += 1
            self._reserved.add(number)
            return number

    def _start_desktop(self, handle: Handle, account: Account, tracker: procs.Tracker) -> Handle:
        home = Path(account.home)
        xsession = home / ".xsession"
        argv = [str(xsession)] if _executable(xsession) else self.desktop
        env = {
            **self._base_env(handle, account),
            "DISPLAY": handle.display, "XAUTHORITY": handle.xauthority,
            "XDG_RUNTIME_DIR": handle.xdg_runtime_dir, "XDG_SESSION_TYPE": "x11",
        }
        cwd = str(home) if home.is_dir() else "/"
        try:
            proc = _spawn(argv, account, env, cwd, tracker, handle.dir / "desktop.log")
        except OSError as exc:
            raise BackendError(f"cannot start the desktop {argv[0]} for {account.name}: {exc}") from exc
        self._own(proc)
        return _with(handle, desktop_pid=proc.pid, desktop_start=procs.start_time(proc.pid))

    def _base_env(self, handle: Handle, account: Account) -> dict[str, str]:
        return {
            "HOME": account.home, "USER": account.name, "LOGNAME": account.name,
            "SHELL": account.shell or "/bin/sh",
            "PATH": "/usr/local/bin:/usr/bin:/bin:/usr/games",
            "LANG": os.environ.get("LANG", "C.UTF-8"),
            procs.MARKER_VAR: handle.track_key or handle.session_id,
        }

    # ------------------------------------------------------------ watching

    async def recover(self) -> list[Recovered]:
        return await asyncio.to_thread(self._recover)

    def _recover(self) -> list[Recovered]:
        found = []
        for record in sorted((self.runtime_dir / "sessions").glob(f"*/{RECORD}")):
            try:
                saved = json.loads(record.read_text())
                handle = Handle(**saved["handle"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("cannot read %s: %s", record, exc)
                continue
            if handle.xvnc_running():
                found.append(Recovered(handle.session_id, handle.user,
                                       Started(handle.display, handle.to_data()), saved["logon_time"]))
        return found

    async def adopt(self, session: Session) -> bool:
        handle = Handle.from_session(session)
        running = await asyncio.to_thread(handle.xvnc_running)
        if running:  # started by a version that left the RFB socket's directory the user's
            await asyncio.to_thread(_make_dir, Path(handle.rfb_socket).parent, 0o700)
        return running

    async def wait_ended(self, session: Session) -> EndReason:
        """Return when Xvnc exits. When the desktop exits first (the user logged out from
        inside), stop Xvnc, as xinit and display managers do.

        Watched through pidfds: after a daemon restart Xvnc is not our child, so waitpid
        cannot tell; polling is the fallback on kernels without pidfd_open.
        """
        handle = Handle.from_session(session)
        if not handle.same_boot():
            return EndReason.CRASHED
        try:
            return await _wait_with_pidfds(handle)
        except OSError:
            return await _wait_polling(handle)
        finally:
            self._collect()

    def _own(self, proc: subprocess.Popen[bytes]) -> None:
        with self._children_lock:
            self._children[proc.pid] = proc

    def _owned(self) -> list[subprocess.Popen[bytes]]:
        with self._children_lock:
            return [*self._children.values(), *_LEFT_RUNNING]

    def _watch_child(self, pid: int) -> None:
        """Reap our own child as soon as it exits, without a thread per child."""
        loop = self._loop
        proc = self._children.get(pid)
        if loop is None or proc is None or pid in self._pidfds:
            return
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return  # no pidfds (kernel < 5.3): _reap() at the next call does it
        self._pidfds[pid] = fd
        loop.add_reader(fd, self._child_exited, pid)

    def _child_exited(self, pid: int) -> None:
        """In the loop's thread: reap the child and stop watching it."""
        fd = self._pidfds.pop(pid, None)
        if fd is not None and self._loop is not None:
            self._loop.remove_reader(fd)
            os.close(fd)
        with self._children_lock:
            proc = self._children.pop(pid, None)
        if proc is not None:
            proc.poll()

    def _reap(self) -> None:
        """From any thread: reap whichever children have exited (no bookkeeping changes)."""
        for proc in self._owned():
            proc.poll()

    def _collect(self) -> None:
        """In the loop's thread: reap and forget every child that has exited."""
        self._reap()
        for proc in self._owned():
            if proc.returncode is not None:
                self._child_exited(proc.pid)
        with self._children_lock:
            _LEFT_RUNNING[:] = [proc for proc in _LEFT_RUNNING if proc.returncode is None]

    async def close(self) -> None:
        """Stop watching; every session (and helper window) keeps running."""
        for pid in list(self._pidfds):
            fd = self._pidfds.pop(pid)
            if self._loop is not None:
                self._loop.remove_reader(fd)
            os.close(fd)
        self._reap()
        # Still running on purpose. A Popen dropped while its process runs warns at garbage
        # collection; parked here, they are simply forgotten when the daemon exits.
        with self._children_lock:
            _LEFT_RUNNING.extend(self._children.values())
            self._children.clear()

    # ------------------------------------------------------------ ending

    async def processes(self, session: Session) -> list[int]:
        handle = Handle.from_session(session)
        return await asyncio.to_thread(lambda: handle.tracker().pids())

    async def end(self, session: Session, kill_after: float) -> None:
        handle = Handle.from_session(session)
        try:
            await asyncio.to_thread(self._end, handle, kill_after)
        except OSError as exc:
            raise BackendError(f"ending session {session.id}: {exc}") from exc
        finally:
            self._collect()

    def _end(self, handle: Handle, kill_after: float) -> None:
        """Blocking and idempotent: helpers, SIGTERM, wait, SIGKILL, then every file."""
        stop_helpers(handle.dir)
        tracker = handle.tracker()
        if handle.same_boot():
            tracker.terminate()
            self._wait_gone(tracker, handle, kill_after)
            left = tracker.kill()
            if left:
                log.warning("session %s: pids %s survived SIGKILL", handle.session_id, left)
            self._kill_xvnc(handle)
        self._remove_files(handle)
        tracker.remove()

    def _wait_gone(self, tracker: procs.Tracker, handle: Handle, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._reap()
            if not tracker.pids() and not handle.xvnc_running():
                return
            time.sleep(0.02)

    def _kill_xvnc(self, handle: Handle) -> None:
        """Xvnc is in the cgroup too; this is for the marker mode and for the paranoid."""
        if handle.xvnc_pid is not None and handle.xvnc_running():
            procs.send([handle.xvnc_pid], signal.SIGKILL)
            deadline = time.monotonic() + 2
            while handle.xvnc_running() and time.monotonic() < deadline:
                self._reap()
                time.sleep(0.01)

    def _remove_files(self, handle: Handle) -> None:
        if handle.display_number >= 0:
            _remove_display_files(handle.display_number, handle.xvnc_pid)
        shutil.rmtree(handle.dir, ignore_errors=True)

    # ------------------------------------------------------------ windows and input

    async def close_windows(self, session: Session) -> int:
        handle = self._live(session)
        return await _x(x11.close_windows, handle)

    async def open_windows(self, session: Session) -> int:
        handle = self._live(session)
        return await _x(x11.open_windows, handle)

    async def idle_seconds(self, session: Session) -> float | None:
        handle = Handle.from_session(session)
        try:
            return await _x(xserver.idle_ms, handle) / 1000
        except BackendError:
            return None

    async def disconnect(self, session: Session) -> None:
        await _x(xserver.disconnect_viewers, self._live(session))

    async def block(self, session: Session, message: str) -> None:
        handle = self._live(session)
        await _x(_block_input, handle)
        await asyncio.to_thread(stop_helpers, handle.dir, "cover")
        try:
            await self._helper(handle, "cover", ["--message", message], helper_language(session),
                               wait_ready=True)
        except Exception:
            if not session.blocked:  # all or nothing: input back on (a re-block keeps it off)
                with contextlib.suppress(BackendError):
                    await _x(_allow_input, handle)
            raise

    async def unblock(self, session: Session) -> None:
        handle = self._live(session)
        await asyncio.to_thread(stop_helpers, handle.dir, "cover")
        await _x(_allow_input, handle)

    async def restore_block(self, session: Session) -> list[str]:
        """Put back whatever undid the block since the last look; say what it was.

        Any X client of the session (a program the user started before the block, over
        SSH, from cron) can turn Xvnc's input settings back on or kill the cover window.
        """
        handle = self._live(session)
        undone = []
        values = await _x(lambda screen: xserver.vnc_params(screen, list(BLOCK_SETTINGS)), handle)
        changed = sorted(name for name, value in values.items() if value != "0")
        if changed:
            await _x(_block_input, handle)
            undone.append("Xvnc accepted input again (" + ", ".join(changed) + ")")
        if not await asyncio.to_thread(helpers, handle.dir, "cover"):
            message = session.block_message or ""
            await self._helper(handle, "cover", ["--message", message], helper_language(session),
                               wait_ready=True)
            undone.append("the cover window was closed")
        return undone

    async def notify_logoff(self, session: Session, seconds: int, text: str) -> None:
        handle = self._live(session)
        await asyncio.to_thread(stop_helpers, handle.dir, "notice")
        await self._helper(handle, "notice", ["--text", text, "--seconds", str(seconds)],
                           helper_language(session))

    async def withdraw_logoff_notice(self, session: Session) -> None:
        await asyncio.to_thread(stop_helpers, self._live(session).dir, "notice")

    async def message(self, session: Session, text: str, timeout: int | None) -> None:
        handle = self._live(session)
        shown = await asyncio.to_thread(lambda: len(helpers(handle.dir, "message")))
        args = ["--text", text, "--index", str(shown)]
        if timeout:
            args += ["--timeout", str(timeout)]
        await self._helper(handle, "message", args, helper_language(session))

    def screen(self, session: Session) -> Screen | None:
        try:
            handle = Handle.from_session(session)
        except BackendError:
            return None
        return _screen(handle) if handle.display else None

    def rfb_socket(self, session: Session) -> Endpoint | None:
        try:
            handle = Handle.from_session(session)
        except BackendError:
            return None
        return Endpoint(handle.rfb_socket, Server(handle.xvnc_pid, handle.xvnc_start))

    def _live(self, session: Session) -> Handle:
        handle = Handle.from_session(session)
        if not handle.xvnc_running():
            raise BackendError(f"session {session.id}: its Xvnc is not running")
        return handle

    async def _helper(self, handle: Handle, kind: str, args: list[str], language: str,
                      wait_ready: bool = False) -> None:
        """Start a helper window process (root, the session's cookie, its own session)."""
        self._loop = asyncio.get_running_loop()
        self._collect()
        proc = await asyncio.to_thread(spawn_helper, handle.dir, _screen(handle), kind, args, wait_ready,
                                       language)
        self._own(proc)
        self._watch_child(proc.pid)
        if proc.stdout is None:
            return
        reader = asyncio.ensure_future(asyncio.to_thread(proc.stdout.readline))
        done, _ = await asyncio.wait({reader}, timeout=10)
        if not done:
            await asyncio.to_thread(stop_helpers, handle.dir, kind)  # its pipe closes: the read ends
        line = await reader
        proc.stdout.close()
        if line != b"ready\n":
            await asyncio.to_thread(stop_helpers, handle.dir, kind)
            raise BackendError(f"session {handle.session_id}: the {kind} window did not appear: "
                            f"{tail(handle.dir / 'helpers.log')}")


# ---------------------------------------------------------------- spawning


def _spawn(argv: Sequence[str], account: Account, env: dict[str, str], cwd: str,
           tracker: procs.Tracker, logfile: Path) -> subprocess.Popen[bytes]:
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


# ---------------------------------------------------------------- small helpers


def ensure_x11_unix() -> None:
    """/tmp/.X11-unix must be root's and 1777 before any user's Xvnc starts, or the
    first one makes it theirs (and could then replace other sessions' sockets)."""
    path = peer.X11_UNIX
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        info = os.fstat(fd)
        if info.st_uid != 0 or info.st_gid != 0:
            os.fchown(fd, 0, 0)
        if stat.S_IMODE(info.st_mode) != 0o1777:
            os.fchmod(fd, 0o1777)
    finally:
        os.close(fd)


def _claim_names(number: int, server: Server) -> None:
    """Both names of the display must be Xvnc's: a free abstract name is one another user
    could bind, and every X client of the session would hand its cookie to them."""
    holder = peer.abstract_listener(number)
    if holder is None or holder.pid != server.pid:
        who = "nobody" if holder is None else f"process {holder.pid} (uid {holder.uid})"
        raise BackendError(f"display :{number}: its abstract socket is held by {who}, not by its Xvnc")
    with peer.connect(str(x11_socket(number)), server, f"display :{number}", 1.0):
        pass


def _secure_rfb(path: Path, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Make the RFB socket root's: from now on only the daemon's bridge reaches the session.

    Xvnc (the user's) made it in a directory of the user's. The directory becomes root's
    0700, so no process of the user can reach the socket again. Anyone who connected in
    the moment before is found (an accepted connection shows the socket's path in
    /proc/net/unix) and the start fails rather than leave them a way in.
    """
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise BackendError(f"Xvnc made no RFB socket at {path}")
        time.sleep(0.005)
    _make_dir(path.parent, 0o700)  # first: then the user can no longer swap what is inside
    if not stat.S_ISSOCK(os.lstat(path).st_mode):
        raise BackendError(f"{path} is not a socket")
    os.chown(path, 0, 0, follow_symlinks=False)
    os.chmod(path, 0o600)
    connected = rfb_connections(path)
    if connected:
        raise BackendError(f"{connected} connection(s) reached {path} before it was secured")


def rfb_connections(path: Path) -> int:
    """How many connections to the Unix socket at ``path`` are open (not counting its listener)."""
    name = str(path)
    count = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
            fields = line.split()
            # Num RefCount Protocol Flags Type St Inode Path: St 01 is unconnected (listening).
            if len(fields) >= 8 and fields[7] == name and fields[5] != "01":
                count += 1
    return count


def x11_socket(number: int) -> Path:
    return peer.X11_UNIX / f"X{number}"


def _display_free(number: int, abstract: set[str]) -> bool:
    return not (os.path.lexists(LOCK_FILE.format(number))
                or os.path.lexists(x11_socket(number))
                or f"@{x11_socket(number)}" in abstract)


def _abstract_x_sockets() -> set[str]:
    """X servers other than ours may listen only on an abstract socket: avoid their numbers too."""
    try:
        lines = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {fields[-1] for fields in (line.split() for line in lines)
            if len(fields) >= 8 and fields[-1].startswith("@/tmp/.X11-unix/")}


RECORD = "session.json"


def _write_record(handle: Handle) -> None:
    """What `polydesk serve --recover` needs if the state database is lost (root only)."""
    path = handle.dir / RECORD
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"handle": handle.to_data(), "logon_time": time.time()}, fh)


def _remove_display_files(number: int, xvnc_pid: int | None) -> None:
    if _lock_is_ours(number, xvnc_pid):
        x11_socket(number).unlink(missing_ok=True)
        Path(LOCK_FILE.format(number)).unlink(missing_ok=True)


def _lock_is_ours(number: int, pid: int | None) -> bool:
    """Only clean a display's files if its lock names our Xvnc, or no live process at all."""
    try:
        owner = int(Path(LOCK_FILE.format(number)).read_text().strip())
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return owner == pid or not procs.is_running(owner)


def _make_dir(path: Path, mode: int, uid: int = 0, gid: int = 0) -> None:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=mode)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchown(fd, uid, gid)
        os.fchmod(fd, mode)  # mkdir's mode is filtered by the umask
    finally:
        os.close(fd)


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


def _screen(handle: Handle) -> Screen:
    return Screen(handle.display, handle.xauthority, handle.xvnc_pid, handle.xvnc_start)


def _block_input(screen: Screen) -> None:
    """Xvnc stops taking key, pointer and clipboard input from its viewers."""
    xserver.set_vnc_params(screen, dict.fromkeys(BLOCK_SETTINGS, 0))


def _allow_input(screen: Screen) -> None:
    xserver.set_vnc_params(screen, dict.fromkeys(BLOCK_SETTINGS, 1))


def _executable(path: Path) -> bool:
    try:
        info = path.stat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and bool(info.st_mode & 0o111)


def _with(handle: Handle, **changes: Any) -> Handle:
    return Handle(**{**asdict(handle), **changes})


async def _x(function: Callable[[Screen], T], handle: Handle) -> T:
    """Run an X call on the session's screen in a thread; X errors become BackendError."""
    try:
        return await asyncio.to_thread(function, _screen(handle))
    except (xauth.X11Error, OSError) as exc:
        raise BackendError(f"session {handle.session_id}: {exc}") from exc
    except Exception as exc:  # python-xlib raises its own zoo on a dying connection
        raise BackendError(f"session {handle.session_id}: X error: {exc!r}") from exc


async def _wait_with_pidfds(handle: Handle) -> EndReason:
    xvnc = _open_pidfd(handle.xvnc_pid, handle.xvnc_start)
    if xvnc is None:
        return EndReason.CRASHED
    desktop = _open_pidfd(handle.desktop_pid, handle.desktop_start)
    reason = EndReason.CRASHED
    try:
        # Both fds may turn readable in one turn of the loop when Xvnc dies and takes the
        # desktop with it, or the desktop's first, while Xvnc is still exiting: only a desktop
        # that ends while Xvnc runs on is a logout.
        if (desktop is not None and await _first_exit(xvnc, desktop) == desktop
                and handle.xvnc_running() and not procs.is_exiting(handle.xvnc_pid or 0)):
            reason = EndReason.LOGOUT
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(xvnc, signal.SIGTERM)
        await _first_exit(xvnc)
        return reason
    finally:
        for fd in (xvnc, desktop):
            if fd is not None:
                os.close(fd)


async def _wait_polling(handle: Handle) -> EndReason:
    reason = EndReason.CRASHED
    while handle.xvnc_running() and handle.xvnc_pid is not None:
        if (reason != EndReason.LOGOUT and handle.desktop_pid is not None
                and not procs.is_running(handle.desktop_pid, handle.desktop_start)):
            procs.send([handle.xvnc_pid], signal.SIGTERM)
            reason = EndReason.LOGOUT
        await asyncio.sleep(0.5)
    return reason


def _open_pidfd(pid: int | None, started: int | None) -> int | None:
    """A pidfd for the process, or None if it is gone (or the pid now names another).

    OSError other than "no such process" means no pidfds here: the caller polls.
    """
    if pid is None:
        return None
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return None
    if procs.is_running(pid, started):  # checked after opening: the fd pins this process
        return fd
    os.close(fd)
    return None


def _resolve(future: asyncio.Future[int], value: int) -> None:
    if not future.done():
        future.set_result(value)


async def _first_exit(*pidfds: int) -> int:
    """Wait until one of the processes exits; return its pidfd."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[int] = loop.create_future()
    for fd in pidfds:
        loop.add_reader(fd, _resolve, done, fd)
    try:
        return await done
    finally:
        for fd in pidfds:
            loop.remove_reader(fd)
