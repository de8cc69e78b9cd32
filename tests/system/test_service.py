"""Polydesk as a systemd service: the unit, `polydesk install-service`, sd_notify, and the
promise that restarting (or crashing) the service never ends a session.

This machine's PID 1 is not systemd, so the real systemd (Debian's /lib/systemd/systemd)
is booted as PID 1 of private PID, mount, UTS and cgroup namespaces (``SystemdBox``),
in a cgroup subtree of its own. The unit under test is installed there by
`polydesk install-service` and driven with the real systemctl and journalctl: nothing of
systemd's behaviour (Type=notify, KillMode=process, Restart=on-failure,
RuntimeDirectoryPreserve, the journal) is simulated. Only its surroundings are minimal:
the boot target, sysinit.target and friends are empty stand-ins, so nothing but
journald and Polydesk starts, and /run, /etc/systemd/system, /etc/polydesk and
/var/lib/polydesk are private tmpfs mounts, so the host is left untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from polydesk.system import systemd
from tests.harness import free_port
from tests.users import ADMIN_GROUP, DASHBOARD_GROUP, TestUser

ROOT = Path(__file__).parents[2]  # the checkout: tests/system/ is two folders down
SYSTEMD = Path("/lib/systemd/systemd")
HOST_UNITS = Path("/usr/lib/systemd/system")
# The journal's units come from the host; the rest of the boot is empty stand-ins.
JOURNAL_UNITS = ("systemd-journald.service", "systemd-journald.socket", "systemd-journald-dev-log.socket")
STAND_INS = ("sysinit", "basic", "shutdown", "multi-user", "network", "nss-user-lookup", "sockets",
             "local-fs", "paths", "timers", "slices")


# ---------------------------------------------------------------- the unit file


def test_contrib_unit_is_the_generated_one() -> None:
    assert (ROOT / "contrib" / "polydesk.service").read_text() == systemd.unit_text(), (
        "contrib/polydesk.service is stale: python -m polydesk.system.systemd > contrib/polydesk.service")


def test_unit_keeps_sessions_and_logs_to_the_journal() -> None:
    lines = set(systemd.unit_text().splitlines())
    for wanted in ("KillMode=process", "Restart=on-failure", "RuntimeDirectory=polydesk",
                   "RuntimeDirectoryPreserve=yes", "StateDirectory=polydesk", "Type=notify",
                   "ExecStart=/opt/polydesk/venv/bin/polydesk serve", "StandardOutput=journal",
                   "WantedBy=multi-user.target"):
        assert wanted in lines


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    unit = tmp_path / systemd.UNIT_NAME
    unit.write_text(systemd.unit_text(sys.executable))  # an ExecStart that exists on any test machine
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_unit_refuses_a_relative_executable() -> None:
    with pytest.raises(ValueError, match="absolute"):
        systemd.unit_text("polydesk")


# ---------------------------------------------------------------- install-service


def test_install_without_systemd_says_what_to_do(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    done = systemd.install(tmp_path / "units", "/opt/polydesk/venv/bin/polydesk", systemd=False,
                           run=lambda argv: ran.append(list(argv)))  # type: ignore[func-returns-value]
    assert done.ok and ran == []
    assert (tmp_path / "units" / "polydesk.service").read_text() == systemd.unit_text()
    assert oct((tmp_path / "units" / "polydesk.service").stat().st_mode & 0o777) == "0o644"
    assert "systemctl daemon-reload && systemctl enable --now polydesk" in "\n".join(done.steps)


def test_install_with_systemd_reloads_and_enables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd, "SYSTEM_UNIT_DIR", str(tmp_path))
    ran: list[list[str]] = []

    def run(argv: object) -> subprocess.CompletedProcess[str]:
        ran.append(list(argv))  # type: ignore[call-overload]
        return subprocess.CompletedProcess(list(argv), 0, "", "")  # type: ignore[call-overload]

    done = systemd.install(tmp_path, sys.executable, systemd=True, run=run, state_dir=tmp_path / "state")
    assert done.ok
    assert ran == [["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "polydesk.service"]]


def test_install_does_not_start_a_second_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A daemon started by hand holds the state directory: enable only, and say so."""
    import fcntl

    monkeypatch.setattr(systemd, "SYSTEM_UNIT_DIR", str(tmp_path))
    state = tmp_path / "state"
    state.mkdir()
    ran: list[list[str]] = []

    def run(argv: object) -> subprocess.CompletedProcess[str]:
        ran.append(list(argv))  # type: ignore[call-overload]
        return subprocess.CompletedProcess(list(argv), 0, "", "")  # type: ignore[call-overload]

    with open(state / "daemon.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        done = systemd.install(tmp_path, sys.executable, systemd=True, run=run, state_dir=state)
    assert ran[-1] == ["systemctl", "enable", "polydesk.service"]
    assert any("stop it" in step for step in done.steps)


def test_install_service_command_without_systemd(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "polydesk", "install-service", "--unit-dir", str(tmp_path),
                             "--executable", "/opt/polydesk/venv/bin/polydesk"],
                            capture_output=True, text=True, env={**os.environ, "LANG": "C.UTF-8"})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "polydesk.service").read_text() == systemd.unit_text()
    assert "systemctl enable --now polydesk" in result.stdout


# ---------------------------------------------------------------- sd_notify


def test_notify_sends_to_the_socket_systemd_names(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        assert systemd.notify("READY=1", env={"NOTIFY_SOCKET": str(path)})
        assert sock.recv(100) == b"READY=1"
    assert not systemd.notify("READY=1", env={})


# ---------------------------------------------------------------- the real systemd


class SystemdBox:
    """Debian's systemd as PID 1 of its own PID, mount, UTS and cgroup namespaces."""

    def __init__(self, config: str) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="pdt-systemd-"))
        self.config = config
        self.cgroups: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.init: psutil.Process | None = None

    # setting up

    def _units(self) -> Path:
        units = self.dir / "units"
        units.mkdir()
        for name in JOURNAL_UNITS:
            shutil.copy(HOST_UNITS / name, units / name)
        for target in STAND_INS:
            (units / f"{target}.target").write_text(
                f"[Unit]\nDescription={target} (test stand-in)\nDefaultDependencies=no\n")
        (units / "polydesk-test.target").write_text(
            "[Unit]\nDescription=Polydesk test boot\nDefaultDependencies=no\n"
            "Wants=systemd-journald.service\n")
        return units

    def _cgroup_setup(self) -> tuple[list[Path], str]:
        """A subtree of each cgroup hierarchy systemd uses, and how to mount it inside."""
        name = f"pdt-systemd-{secrets.token_hex(4)}"
        base = Path("/sys/fs/cgroup")
        if (base / "systemd" / "cgroup.procs").exists() and (base / "unified" / "cgroup.procs").exists():
            self.cgroups = [base / "systemd" / name, base / "unified" / name]  # hybrid (this machine)
            mounts = ("mount -t tmpfs tmpfs /sys/fs/cgroup\n"
                      "mkdir /sys/fs/cgroup/systemd /sys/fs/cgroup/unified\n"
                      "mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd\n"
                      "mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified\n")
        elif (base / "cgroup.controllers").exists():
            self.cgroups = [base / name]  # unified
            mounts = "mount -t cgroup2 cgroup2 /sys/fs/cgroup\n"
        else:
            pytest.skip("no cgroup hierarchy systemd can use")
        for cgroup in self.cgroups:
            cgroup.mkdir()
        return self.cgroups, mounts

    def start(self) -> None:
        units = self._units()
        cgroups, cgroup_mounts = self._cgroup_setup()
        package = Path(sysconfig.get_paths()["purelib"]) / "polydesk"
        if not package.is_dir():
            pytest.skip(f"polydesk is not installed in {package.parent} (scripts/install)")
        for path in ("/etc/polydesk", "/var/lib/polydesk"):
            os.makedirs(path, exist_ok=True)  # mount points; what scripts/install and the unit make anyway
        (self.dir / "polydesk.toml").write_text(self.config)
        inner = self.dir / "inner.sh"
        inner.write_text(
            "set -e\n" + cgroup_mounts +
            "mount -t tmpfs tmpfs /run\n"
            "mount -t tmpfs tmpfs /etc/systemd/system\n"
            f"mount --bind {units} {HOST_UNITS}\n"
            "mount -t tmpfs tmpfs /etc/polydesk\n"
            f"cp {self.dir}/polydesk.toml /etc/polydesk/\n"
            "mount -t tmpfs tmpfs /var/lib/polydesk\n"
            # The unit runs the installed copy of Polydesk: make that copy this tree's.
            f"mount --bind {ROOT / 'polydesk'} {package}\n"
            f"exec env -i container=polydesk-test {SYSTEMD} --system --unit=polydesk-test.target "
            "--log-target=console --log-level=notice\n")
        joins = "".join(f"echo $$ > {cgroup}/cgroup.procs\n" for cgroup in cgroups)
        outer = (joins + "exec unshare --pid --fork --mount --uts --cgroup --mount-proc "
                 f"--propagation private /bin/sh {inner}\n")
        with open(self.dir / "boot.log", "wb") as log:
            self.proc = subprocess.Popen(["/bin/sh", "-c", outer], stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"systemd exited: {self.boot_log()}")
            children = psutil.Process(self.proc.pid).children()
            if children and children[0].name() == "systemd":
                self.init = children[0]
                state = self.run("systemctl", "is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.1)
        raise RuntimeError(f"systemd did not boot: {self.boot_log()}")

    def boot_log(self) -> str:
        return (self.dir / "boot.log").read_text(errors="replace")

    # using it

    def run(self, *argv: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the box (its /run, its PID namespace), as root."""
        assert self.init is not None
        result = subprocess.run(
            ["nsenter", "--target", str(self.init.pid), "--mount", "--pid", "--uts", "--", *argv],
            capture_output=True, text=True, timeout=timeout,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
        if check:
            assert result.returncode == 0, f"{argv}: {result.stdout}{result.stderr}"
        return result

    def polydesk(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.run(systemd.DEFAULT_EXECUTABLE, *args, check=False)

    def main_pid(self) -> int:
        out = self.run("systemctl", "show", "--property=MainPID", "--value", "polydesk").stdout
        return int(out.strip())

    def wait_active(self, other_than: int = 0, timeout: float = 30) -> int:
        """The service's main pid, once it is active (and not ``other_than``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run("systemctl", "is-active", "polydesk", check=False).stdout.strip()
            if state == "active":
                pid = self.main_pid()
                if pid not in (0, other_than):
                    return pid
            time.sleep(0.1)
        status = self.run("systemctl", "status", "polydesk", "--no-pager", check=False)
        raise AssertionError(f"polydesk did not become active: {status.stdout}")

    def journal(self) -> str:
        return self.run("journalctl", "--no-pager", "-o", "cat", "-u", "polydesk").stdout

    # tearing down

    def stop(self) -> None:
        if self.init is not None and self.init.is_running():
            self.polydesk("logoff", "--all", "--force", "--yes")
            self.init.kill()  # PID 1 of the namespace: the kernel ends every process in it
        if self.proc is not None:
            self.proc.wait(timeout=30)
        for cgroup in self.cgroups:
            _remove_cgroup(cgroup)
        shutil.rmtree(self.dir, ignore_errors=True)


def _remove_cgroup(top: Path) -> None:
    deadline = time.monotonic() + 10
    while top.exists() and time.monotonic() < deadline:
        for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            with contextlib.suppress(OSError):
                path.rmdir()
        try:
            top.rmdir()
        except OSError:
            time.sleep(0.2)


@pytest.fixture
def systemd_box(make_user: Callable[..., TestUser]) -> Iterator[SystemdBox]:
    """Depends on make_user so that it is torn down first: sessions end before their users go."""
    if not SYSTEMD.exists() or shutil.which("nsenter") is None:
        pytest.skip("needs Debian's systemd package and util-linux's nsenter")
    port = free_port()
    box = SystemdBox(
        f'listen = "127.0.0.1:{port}"\nadmin_group = "{ADMIN_GROUP}"\n'
        f'dashboard_group = "{DASHBOARD_GROUP}"\nbackends = ["xvnc"]\n'
        f"first_display = {600 + secrets.randbelow(300)}\n")
    try:
        box.start()
        yield box
    finally:
        box.stop()


def _xvnc(user: TestUser) -> psutil.Process:
    found = [p for p in psutil.process_iter(["name", "uids"]) if p.info["name"] == "Xvnc"
             and p.info["uids"] and p.info["uids"].real == user.uid]
    assert len(found) == 1, found
    return found[0]


def test_the_service_restarts_and_crashes_without_ending_a_session(
    systemd_box: SystemdBox, make_user: Callable[..., TestUser]
) -> None:
    box = systemd_box
    installed = box.polydesk("install-service")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "systemctl enable --now polydesk.service" in installed.stdout
    # Type=notify: `enable --now` returned, so the daemon said READY=1.
    first = box.wait_active()
    assert box.run("cat", "/etc/systemd/system/polydesk.service").stdout == systemd.unit_text()
    assert box.run("systemctl", "is-enabled", "polydesk").stdout.strip() == "enabled"

    ana = make_user("ana")
    logon = box.polydesk("logon", ana.name, "--json")
    assert logon.returncode == 0, logon.stderr
    session = json.loads(logon.stdout)["session"]
    xvnc = _xvnc(ana)
    born = xvnc.create_time()

    # systemctl restart: SIGTERM to the daemon only (KillMode=process), then a new one.
    box.run("systemctl", "restart", "polydesk")
    second = box.wait_active(other_than=first)
    # A crash: the main process dies; Restart=on-failure brings it back.
    box.run("kill", "-KILL", str(second))
    third = box.wait_active(other_than=second, timeout=60)
    assert len({first, second, third}) == 3

    assert xvnc.is_running() and xvnc.create_time() == born, "the session's X server was restarted"
    listed = json.loads(box.polydesk("sessions", "--json").stdout)
    assert [(s["id"], s["user"], s["display"]) for s in listed] == [
        (session["id"], ana.name, session["display"])]
    # Re-adopted, not just listed: the session's runtime directory survived (RuntimeDirectoryPreserve)
    # and the new daemon can act in it.
    message = box.polydesk("msg", session["id"], "still here")
    assert message.returncode == 0, message.stdout + message.stderr
    ended = box.polydesk("logoff", session["id"], "--force", "--yes")
    assert ended.returncode == 0, ended.stdout + ended.stderr
    deadline = time.monotonic() + 10
    while xvnc.is_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not xvnc.is_running()

    journal = box.journal()
    assert journal.count("polydesk serving on") == 3, journal  # logs go to the journal
