"""Issue 16's acceptance on real Xvnc sessions: launch a program or open an address on chosen
sessions, list their applications, close one; through the CLI, as its users would.

One daemon and three sessions for the whole module (ana and bia chosen, caio not); each test
ends the programs it started, so the leak check still holds per test.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from Xlib import X
from Xlib import display as xdisplay

from polydesk.system import processes as procs
from tests.harness import Daemon, create_user, make_daemon_dirs, remove_with_processes, shutdown, wait_for
from tests.users import TestUser, settled_pids, user_pids

EXTRA_GROUP = "pdt-apps"  # a supplementary group the launched program must carry

STUBBORN = """
import signal, sys
from Xlib import display
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # and it ignores WM_DELETE_WINDOW below
conn = display.Display()
screen = conn.screen()
window = screen.root.create_window(0, 0, 200, 100, 0, screen.root_depth)
window.set_wm_name(sys.argv[1])
window.set_wm_class("stubborn", "Stubborn")
window.set_wm_protocols([conn.intern_atom("WM_DELETE_WINDOW")])
window.map()
conn.flush()
while True:
    conn.next_event()
"""


@dataclass
class Lab:
    daemon: Daemon
    teacher: TestUser
    users: dict[str, TestUser]
    sessions: dict[str, dict[str, Any]]
    scripts: Path

    def id(self, name: str) -> str:
        return str(self.sessions[name]["id"])

    def apps(self, name: str) -> list[dict[str, Any]]:
        result = self.daemon.cli("apps", self.id(name), "--json", user=self.teacher)
        assert result.returncode == 0, result.stderr
        listed: list[dict[str, Any]] = json.loads(result.stdout)
        return listed

    def xvnc_pid(self, name: str) -> int:
        return next(p for p in user_pids(self.users[name].uid) if _comm(p) == "Xvnc")


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    subprocess.run(["groupadd", "-f", EXTRA_GROUP], check=True)
    teacher = create_user("teach", ("pdt-dashboard",))
    users = {"ana": create_user("ana", (EXTRA_GROUP,)), "bia": create_user("bia"),
             "caio": create_user("caio")}
    daemon = make_daemon_dirs("close_wait = 0.5\nkill_after = 0.5\n")
    scripts = daemon.state_dir.parent
    (scripts / "stubborn.py").write_text(STUBBORN)
    (scripts / "stubborn.py").chmod(0o644)
    try:
        daemon.start()
        sessions = {}
        for name, user in users.items():
            result = daemon.cli("logon", user.name, "--json")
            assert result.returncode == 0, result.stderr + daemon.log.read_text()
            sessions[name] = json.loads(result.stdout)["session"]
        for user in users.values():  # the desktops have started (openbox starts their xterm)
            wait_for(lambda user=user: "xterm" in map(_comm, user_pids(user.uid)), timeout=15)
            settled_pids(user.uid, quiet=0.3)
        yield Lab(daemon, teacher, users, sessions, scripts)
    finally:
        shutdown(daemon)
        for user in [teacher, *users.values()]:
            remove_with_processes(user)
        subprocess.run(["groupdel", EXTRA_GROUP], check=False, stderr=subprocess.DEVNULL)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _status(pid: int) -> dict[str, str]:
    return dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if ":\t" in line)


def _fds(pid: int) -> set[str]:
    found = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            found.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
    return found


def _pids(answer: dict[str, Any]) -> dict[str, int]:
    """Session id -> the pid a launch result names ("pid N")."""
    return {r["id"]: int(r["reason"].split()[1]) for r in answer["results"] if r["status"] == "launched"}


def _window_of(lab: Lab, name: str, pid: int) -> dict[str, Any]:
    return wait_for(lambda: next((a for a in lab.apps(name) if a["pid"] == pid), None), timeout=10,
                    what=f"a window of pid {pid} in {name}'s session")


def test_launch_runs_as_the_user_in_exactly_the_chosen_sessions(lab: Lab) -> None:
    d = lab.daemon
    title = f"pdt-{secrets.token_hex(3)}"
    result = d.cli("launch", "--json", lab.id("ana"), lab.id("bia"), "--", "xmessage", "-title", title,
                   "hello; $(id)", user=lab.teacher)
    assert result.returncode == 0, result.stderr
    pids = _pids(json.loads(result.stdout))
    assert set(pids) == {lab.id("ana"), lab.id("bia")}
    try:
        for name in ("ana", "bia"):
            user, pid = lab.users[name], pids[lab.id(name)]
            window = _window_of(lab, name, pid)
            assert window["title"] == title and window["pid_source"] == "server"
            status = _status(pid)
            assert status["Uid"].split() == [str(user.uid)] * 4
            assert status["Gid"].split() == [str(user.gid)] * 4
            assert sorted(map(int, status["Groups"].split())) == sorted(os.getgrouplist(user.name, user.gid))
            assert status["CapEff"] == status["CapPrm"] == status["CapAmb"] == "0000000000000000"
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            assert f"DISPLAY={lab.sessions[name]['display']}".encode() in environ
            assert f"HOME={user.home}".encode() in environ
            xvnc = lab.xvnc_pid(name)
            assert Path(f"/proc/{pid}/cgroup").read_text() == Path(f"/proc/{xvnc}/cgroup").read_text()
            assert d.proc is not None
            shared = (_fds(pid) & _fds(d.proc.pid)) - {"/dev/null"}
            assert not shared, f"the launched program holds the daemon's {shared}"
        ana_groups = _status(pids[lab.id("ana")])["Groups"].split()
        assert str(grp.getgrnam(EXTRA_GROUP).gr_gid) in ana_groups  # initgroups, not just the primary
        assert not [a for a in lab.apps("caio") if a["title"] == title]  # not chosen: nothing there
        audit = d.cli_json("audit")[-1]
        assert audit["action"] == "launch" and audit["caller"] == lab.teacher.name
        assert audit["detail"]["argv"] == ["xmessage", "-title", title, "hello; $(id)"]
    finally:
        closed = d.cli("close", "--name", "xmessage", lab.id("ana"), lab.id("bia"), user=lab.teacher)
    assert closed.returncode == 0, closed.stderr + closed.stdout
    assert not [p for p in pids.values() if procs.is_running(p)]


def test_an_address_with_shell_syntax_opens_that_address_only(lab: Lab) -> None:
    ana = lab.users["ana"]
    marker = f"/tmp/pdt-injected-{secrets.token_hex(3)}"
    home = Path(ana.home)
    browser = home / "pdt-browser"
    files = {
        browser: f'#!/bin/sh\nprintf "%s\\n" "$@" > {home}/opened.txt\n',
        home / ".local/share/applications/pdt-browser.desktop":
            f"[Desktop Entry]\nType=Application\nName=Recorder\nExec={browser} %u\n"
            "MimeType=x-scheme-handler/http;\n",
        home / ".config/mimeapps.list": "[Default Applications]\nx-scheme-handler/http=pdt-browser.desktop\n",
    }
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        for part in [path, *path.relative_to(home).parents]:
            os.chown(home / part, ana.uid, ana.gid)
    browser.chmod(0o755)
    url = f"http://example.invalid/a;touch {marker}-1;$(touch {marker}-2)`touch {marker}-3`&x=$HOME"
    running = set(user_pids(ana.uid))
    try:
        result = lab.daemon.cli("open", lab.id("ana"), url, user=lab.teacher)
        assert result.returncode == 0, result.stderr
        opened = home / "opened.txt"
        wait_for(lambda: opened.exists() and opened.read_text(), timeout=10, what="the browser to run")
        assert opened.read_text() == url + "\n"  # one argument, as typed
        time.sleep(0.3)
        assert not [p for p in Path("/tmp").glob(Path(marker).name + "*")]
    finally:  # xdg-open's helpers start a D-Bus session bus where the desktop has none: it stays
        for pid in set(user_pids(ana.uid)) - running:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert lab.daemon.cli_json("audit")[-1]["detail"] == {"url": url}


def test_list_shows_pid_title_and_start_and_a_stubborn_app_is_killed(lab: Lab) -> None:
    title = f"stubborn-{secrets.token_hex(3)}"
    launched = lab.daemon.cli("launch", "--json", lab.id("bia"), "--", sys.executable,
                              str(lab.scripts / "stubborn.py"), title)
    assert launched.returncode == 0, launched.stderr
    pid = _pids(json.loads(launched.stdout))[lab.id("bia")]
    window = _window_of(lab, "bia", pid)
    assert window["title"] == title and window["wm_class"] == "Stubborn" and window["pid_source"] == "server"
    assert window["start"] == procs.start_time(pid)
    assert abs(window["started_at"] - time.time()) < 30
    text = lab.daemon.cli("apps", lab.id("bia"), user=lab.teacher).stdout
    assert title in text and str(pid) in text

    began = time.monotonic()
    closed = lab.daemon.cli("close", lab.id("bia"), str(pid), "--json", user=lab.teacher)
    assert closed.returncode == 0, closed.stderr
    assert json.loads(closed.stdout)["results"][0]["status"] == "killed"
    assert time.monotonic() - began >= 1.0  # close_wait, then kill_after: it was asked first
    assert not procs.is_running(pid)
    assert lab.daemon.cli_json("audit")[-1]["detail"] == {"pid": pid, "start": window["start"]}


def test_a_forged_net_wm_pid_never_gets_another_process_signalled(lab: Lab) -> None:
    caio = lab.users["caio"]
    outsider = subprocess.Popen(["sleep", "300"], user=caio.uid, group=caio.gid)  # caio's, not in the session
    victims = {"other user": lab.xvnc_pid("bia"), "outside the session": outsider.pid}
    before = {pid: procs.start_time(pid) for pid in victims.values()}
    display = str(lab.sessions["caio"]["display"])
    os.environ["XAUTHORITY"] = str(lab.daemon.runtime_dir / "sessions" / lab.id("caio") / "Xauthority")
    live = None
    try:
        # Windows claiming the victims' pids whose client (this test, root) is gone but whose
        # resources stay (RetainPermanent).
        for claimed in victims.values():
            conn = xdisplay.Display(display)
            window = conn.screen().root.create_window(0, 0, 100, 50, 0, conn.screen().root_depth)
            window.set_wm_class("forged", "Forged")
            net_wm_pid, cardinal = conn.intern_atom("_NET_WM_PID"), conn.intern_atom("CARDINAL")
            window.change_property(net_wm_pid, cardinal, 32, [claimed])
            window.map()
            conn.set_close_down_mode(X.RetainPermanent)
            conn.close()
        # And a live client of the session claiming another user's pid.
        launched = lab.daemon.cli("launch", "--json", lab.id("caio"), "--", "xmessage", "live")
        live = _pids(json.loads(launched.stdout))[lab.id("caio")]
        window = _window_of(lab, "caio", live)
        subprocess.run(["xprop", "-display", display, "-id", str(window["window"]), "-f", "_NET_WM_PID",
                        "32c", "-set", "_NET_WM_PID", str(victims["other user"])], check=True)
        listed = lab.apps("caio")
        # The server's own answer (X-Resource) wins over what the windows claim.
        assert [a["pid"] for a in listed if a["window"] == window["window"]] == [live]
        forged = [a for a in listed if a["wm_class"] == "Forged"]
        assert len(forged) == 2 and not {a["pid"] for a in forged} & set(victims.values())
        assert {a["pid_source"] for a in forged} == {"server"}  # this test's own pid: not caio's

        # Asked outright for the victims (the API, as a forged list would make a client ask):
        # refused, nothing signalled.
        with lab.daemon.client("/api/v1") as api:
            for what, pid in victims.items():
                answer = api.post("/sessions/close-app", json={"ids": [lab.id("caio")], "pid": pid,
                                                               "start": before[pid]}).json()
                assert answer["failed"] == 1, what
                assert "nothing was signalled" in answer["results"][0]["reason"], answer
        by_name = lab.daemon.cli("close", "--name", "forged", lab.id("caio"), user=lab.teacher)
        assert by_name.returncode == 1 and "nothing was signalled" in by_name.stderr  # the pid is root's
        time.sleep(0.3)
        for pid, start in before.items():
            assert procs.is_running(pid, start), f"process {pid} was signalled"
        assert _status(outsider.pid)["State"].startswith("S")  # not even stopped
    finally:
        os.environ.pop("XAUTHORITY", None)
        outsider.kill()
        outsider.wait()
        if live is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(live, signal.SIGKILL)


def test_a_standard_user_acts_only_in_their_own_session(lab: Lab) -> None:
    ana, bia = lab.users["ana"], lab.id("bia")
    for args in (("launch", bia, "--", "xmessage", "x"), ("open", bia, "http://example.invalid"),
                 ("apps", bia), ("close", "--name", "xmessage", bia)):
        result = lab.daemon.cli(*args, user=ana)
        assert result.returncode == 3, f"{args}: {result.returncode} {result.stderr}"
    assert not [a for a in lab.apps("bia") if a["title"] == "x"]
    mine = lab.daemon.cli("apps", lab.id("ana"), user=ana)
    assert mine.returncode == 0, mine.stderr
