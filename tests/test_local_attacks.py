"""Issue 13, the attacks of another local user and of a student inside their own session on
the X and RFB sockets, done for real against a daemon and real sessions:

- another local user binds a display's abstract socket name to catch every X client's
  cookie (critical 1);
- the student renames their display's file socket and puts up a server of their own that
  the root daemon would talk to (medium 4);
- the student lifts a block with a program started inside the session, and reaches their
  RFB socket without the bridge (medium 5, low 13).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from polydesk.core.screen import Screen
from polydesk.system import peer
from polydesk.system.x11 import xserver
from tests.harness import Daemon, wait_for
from tests.test_daemon import logon, plant_xsession
from tests.users import TestUser
from tests.web.stationclient import station
from tests.web.test_station_bridge import token_for
from tests.web.webclient import signin

# Run as the attacker: bind an abstract X socket name, report what any client sends to it.
CATCHER = r"""
import json, socket, sys, time
names, seconds = sys.argv[1].split(","), float(sys.argv[2])
bound, refused, caught = [], {}, []
servers = []
for name in names:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.bind(name.replace("@", "\0", 1))
        s.listen(16)
        s.setblocking(False)
        servers.append(s)
        bound.append(name)
    except OSError as exc:
        refused[name] = exc.errno
        s.close()
print(json.dumps({"bound": bound, "refused": refused}), flush=True)
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    for s in servers:
        try:
            conn, _ = s.accept()
        except BlockingIOError:
            continue
        conn.settimeout(1)
        try:
            caught.append(conn.recv(4096).hex())
        except OSError:
            caught.append("")
        conn.close()
    time.sleep(0.01)
print(json.dumps({"caught": caught}), flush=True)
"""


def run_as(user: TestUser, argv: list[str], env: dict[str, str] | None = None,
           **kwargs: Any) -> subprocess.Popen[str]:
    base = {"PATH": "/usr/bin:/bin", "HOME": user.home}
    return subprocess.Popen(argv, user=user.uid, group=user.gid, extra_groups=[], cwd="/", text=True,
                            env={**base, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kwargs)


@pytest.fixture
def catcher(make_user: Callable[..., TestUser]) -> Iterator[Callable[[list[str], float], dict[str, Any]]]:
    """Mallory, another local user with a shell, binding abstract socket names."""
    mallory = make_user("mallory")
    running: list[subprocess.Popen[str]] = []

    def start(names: list[str], seconds: float) -> dict[str, Any]:
        proc = run_as(mallory, [sys.executable, "-c", CATCHER, ",".join(names), str(seconds)])
        running.append(proc)
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first, proc.stderr.read() if proc.stderr else ""
        report: dict[str, Any] = json.loads(first)
        report["proc"] = proc
        return report

    yield start
    for proc in running:
        proc.kill()
        proc.communicate()


def copied_cookie(user: TestUser, daemon: Daemon, session_id: str) -> str:
    """The session's cookie in a file of the user's, as any program of the session has it."""
    source = daemon.runtime_dir / "sessions" / session_id / "Xauthority"
    target = Path(user.home) / f".Xauthority-{session_id}"
    target.write_bytes(source.read_bytes())
    os.chown(target, user.uid, user.gid)
    return str(target)


def screen_of(daemon: Daemon, session: dict[str, Any]) -> Screen:
    xauthority = daemon.runtime_dir / "sessions" / str(session["id"]) / "Xauthority"
    return Screen(str(session["display"]), str(xauthority))


def xvnc_pid(display: str) -> int:
    number = display.lstrip(":")
    return int(Path(f"/tmp/.X{number}-lock").read_text().strip())


def test_another_user_cannot_take_a_display_name_and_catch_the_cookie(
    daemon: Daemon, make_user: Callable[..., TestUser],
    catcher: Callable[[list[str], float], dict[str, Any]],
) -> None:
    ana = make_user("ana")
    session = logon(daemon, ana)
    session_id, display = str(session["id"]), str(session["display"])
    name = f"@/tmp/.X11-unix/X{display.lstrip(':')}"
    mallory = catcher([name], 6)
    # The X server holds the name itself: nobody else can bind it.
    assert mallory["refused"] == {name: 98}, mallory  # EADDRINUSE
    holder = peer.abstract_listener(int(display.lstrip(":")))
    assert holder is not None and holder.pid == xvnc_pid(display)
    # A program of ana's session and the daemon's own X clients reach the real server...
    xauthority = copied_cookie(ana, daemon, session_id)
    program = run_as(ana, ["xdpyinfo", "-display", display], env={"XAUTHORITY": xauthority})
    out, err = program.communicate(timeout=30)
    assert program.returncode == 0 and f"name of display:    {display}" in out, err
    assert daemon.cli("block", session_id).returncode == 0
    assert daemon.cli("unblock", session_id).returncode == 0
    # ...and mallory caught nothing.
    proc = mallory["proc"]
    last = json.loads(proc.communicate(timeout=30)[0].splitlines()[-1])
    assert last["caught"] == []


def test_a_display_name_taken_before_logon_is_skipped_not_shared(
    daemon: Daemon, make_user: Callable[..., TestUser],
    catcher: Callable[[list[str], float], dict[str, Any]],
) -> None:
    # Mallory takes the abstract names of the next displays before anyone logs on.
    taken = [f"@/tmp/.X11-unix/X{n}" for n in range(10, 40) if not os.path.exists(f"/tmp/.X{n}-lock")]
    mallory = catcher(taken, 30)
    assert mallory["bound"], mallory
    ana = make_user("ana")
    session = logon(daemon, ana)
    display = str(session["display"])
    assert f"@/tmp/.X11-unix/X{display.lstrip(':')}" not in mallory["bound"]
    holder = peer.abstract_listener(int(display.lstrip(":")))
    assert holder is not None and holder.pid == xvnc_pid(display), "the display's name is not its own"
    xauthority = copied_cookie(ana, daemon, str(session["id"]))
    program = run_as(ana, ["xdpyinfo", "-display", display], env={"XAUTHORITY": xauthority})
    assert program.communicate(timeout=30) and program.returncode == 0


# Run as the student: move the display's file socket aside and serve a fake X server there,
# which answers every connection with a setup claiming to be ~256 KiB, then a flood.
FAKE_SERVER = r"""
import os, socket, sys, threading, time
path, seconds = sys.argv[1], float(sys.argv[2])
os.rename(path, path + ".real")
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(16)
server.settimeout(0.2)
print("ready", flush=True)
connections = 0
deadline = time.monotonic() + seconds
def flood(conn):
    try:
        conn.recv(4096)
        conn.sendall(bytes([1, 0, 11, 0, 0xFF, 0xFF, 0xFF, 0xFF]))
        end = time.monotonic() + 3
        while time.monotonic() < end:
            conn.sendall(b"\0" * 65536)
    except OSError:
        pass
    conn.close()
while time.monotonic() < deadline:
    try:
        conn, _ = server.accept()
    except socket.timeout:
        continue
    connections += 1
    threading.Thread(target=flood, args=(conn,), daemon=True).start()
os.unlink(path)
os.rename(path + ".real", path)
print(connections, flush=True)
"""


def test_a_fake_server_in_place_of_the_display_socket_never_hears_from_the_daemon(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, teacher = make_user("ana"), make_user("teacher", role="admin")
    session = logon(daemon, ana)
    session_id, display = str(session["id"]), str(session["display"])
    path = f"/tmp/.X11-unix/X{display.lstrip(':')}"
    fake = run_as(ana, [sys.executable, "-c", FAKE_SERVER, path, "12"])
    try:
        assert fake.stdout is not None and fake.stdout.readline().strip() == "ready"
        assert daemon.proc is not None
        rss_before = psutil.Process(daemon.proc.pid).memory_info().rss
        # Everything that makes the root daemon talk to the session's X server:
        thumbnail = daemon.cli("sessions", "--json", user=teacher)
        assert thumbnail.returncode == 0
        for command in (["block", session_id], ["msg", session_id, "hello"], ["unblock", session_id],
                        ["disconnect", session_id]):
            result = daemon.cli(*command)
            assert result.returncode == 0, (command, result.stdout, result.stderr)
        from tests.web.webclient import socket_client
        with socket_client(daemon) as root:
            for size in ("small", "large"):
                answer = root.get(f"/api/v1/sessions/{session_id}/thumbnail?size={size}")
                assert answer.status_code == 200, answer.text
        rss_after = psutil.Process(daemon.proc.pid).memory_info().rss
    finally:
        out, err = fake.communicate(timeout=30)
    assert int(out.split()[-1]) == 0, f"the daemon connected to the student's server: {err}"
    assert rss_after - rss_before < 64 << 20


def test_a_student_cannot_lift_a_block_from_inside_the_session(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, teacher = make_user("ana"), make_user("teacher", role="dashboard")
    plant_xsession(ana, "#!/bin/sh\nexec openbox --startup 'xterm -e sh'\n")
    session = logon(daemon, ana)
    session_id, display = str(session["id"]), str(session["display"])
    xauthority = copied_cookie(ana, daemon, session_id)
    screen = screen_of(daemon, session)
    assert daemon.cli("block", session_id).returncode == 0
    assert xserver.vnc_params(screen, ["AcceptKeyEvents"]) == {"AcceptKeyEvents": "0"}

    # A program ana started before the block turns input back on and kills the cover.
    as_ana = {"DISPLAY": display, "XAUTHORITY": xauthority}
    vncconfig = run_as(ana, ["vncconfig", "-set", "AcceptKeyEvents=1", "-set", "AcceptPointerEvents=1"],
                       env=as_ana)
    vncconfig.communicate(timeout=30)
    cover = [w for w in windows_of(screen) if w[1] == "polydesk-helper"]
    assert cover, "no cover window while blocked"
    xkill = run_as(ana, ["xkill", "-id", str(cover[0][0])], env=as_ana)
    xkill.communicate(timeout=30)

    # Within a second or two, the daemon has put both back, and says so.
    wait_for(lambda: xserver.vnc_params(screen, ["AcceptKeyEvents", "AcceptPointerEvents"])
             == {"AcceptKeyEvents": "0", "AcceptPointerEvents": "0"}, timeout=5)
    # (the new cover may well get the killed one's window id: X reuses a gone client's ids)
    wait_for(lambda: windows_of(screen)[-1][1] == "polydesk-helper", timeout=10, what="the cover back on top")
    wait_for(lambda: daemon.sessions()[0]["block_undone"] >= 1, timeout=5)
    audit = daemon.cli_json("audit")
    restored = [r for r in audit if r["action"] == "block" and r["detail"].get("restored")]
    assert restored and restored[-1]["caller"] == "polydesk", audit[-3:]  # the daemon itself
    # The teacher's Dashboard marks the card.
    with signin(daemon, teacher) as browser:
        card = browser.get(f"/ui/cards/{session_id}").text
    mark = r'class="badge undone-badge"[^>]*>Block undone <span class="undone-count">[1-9]'
    assert re.search(mark, card), card
    # Unblocking clears the mark.
    assert daemon.cli("unblock", session_id).returncode == 0
    assert daemon.sessions()[0]["block_undone"] == 0


def windows_of(screen: Screen) -> list[tuple[int, str]]:
    from polydesk.system.x11 import client as x11
    with x11.connection(screen) as conn:
        found = []
        for window in conn.screen().root.query_tree().children:
            wm_class = window.get_wm_class()
            found.append((window.id, wm_class[0] if wm_class else ""))
        return found


def test_the_student_cannot_reach_their_rfb_socket_and_cannot_lock_out_the_teacher(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, teacher = make_user("ana"), make_user("teacher", role="admin")
    session = logon(daemon, ana)
    session_id = str(session["id"])
    rfb = daemon.runtime_dir / "sessions" / session_id / "vnc" / "rfb.sock"
    # Ana (over SSH, say) tries her own session's RFB socket: a viewer without the bridge,
    # or six aborted handshakes to trip Xvnc's blacklist.
    probe = run_as(ana, [sys.executable, "-c", (
        "import socket, sys\n"
        "errors = []\n"
        "for _ in range(8):\n"
        "    s = socket.socket(socket.AF_UNIX)\n"
        "    try:\n"
        "        s.connect(sys.argv[1]); s.recv(12); s.close(); errors.append('connected')\n"
        "    except OSError as exc:\n"
        "        errors.append(type(exc).__name__)\n"
        "print(','.join(errors))\n"), str(rfb)])
    out, err = probe.communicate(timeout=30)
    assert out.strip() == ",".join(["PermissionError"] * 8), err
    # Root can: eight aborted handshakes (more than Xvnc's default blacklist threshold)...
    for _ in range(8):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(rfb))
            sock.recv(12)
    # ...and the teacher's Take control still gets in at once.
    started = time.monotonic()
    with station(daemon, session_id, token_for(daemon, teacher), mode="control") as client:
        assert client.name == ana.name
    assert time.monotonic() - started < 5
