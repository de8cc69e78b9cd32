"""No one where they don't belong: another local user cannot reach a session, and a
blocked session cannot be lifted from the keyboard and mouse of its station."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from polydesk.core.screen import Screen
from polydesk.system.x11 import client as x11
from tests.harness import Daemon, wait_for
from tests.rfb import RfbClient
from tests.test_daemon import logon, plant_xsession
from tests.users import TestUser, user_pids

ALT, CTRL, F4, TAB, BACKSPACE = 0xFFE9, 0xFFE3, 0xFFC1, 0xFF09, 0xFF08

PROBE = r"""
import json, socket, sys, httpx
from Xlib import display, error
display_name, xauthority, rfb, api, session_id = sys.argv[1:]
found = {}
try:
    display.Display(display_name).close()
    found["x_without_cookie"] = "connected"
except Exception as exc:
    found["x_without_cookie"] = type(exc).__name__
try:
    open(xauthority, "rb").read()
    found["cookie_file"] = "read"
except OSError as exc:
    found["cookie_file"] = type(exc).__name__
try:
    socket.socket(socket.AF_UNIX).connect(rfb)
    found["rfb"] = "connected"
except OSError as exc:
    found["rfb"] = type(exc).__name__
client = httpx.Client(transport=httpx.HTTPTransport(uds=api), base_url="http://polydesk/api/v1")
found["whoami"] = client.get("/whoami").json()["user"]
found["thumbnail"] = client.get(f"/sessions/{session_id}/thumbnail").status_code
found["logoff"] = client.post("/sessions/logoff", json={"ids": [session_id], "force": True}).status_code
print(json.dumps(found))
"""


def session_paths(daemon: Daemon, session_id: str) -> tuple[Path, Path]:
    base = daemon.runtime_dir / "sessions" / session_id
    return base / "Xauthority", base / "vnc" / "rfb.sock"


def test_another_local_user_cannot_reach_a_session(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, mallory = make_user("ana"), make_user("mallory")
    session = logon(daemon, ana)
    xauthority, rfb = session_paths(daemon, str(session["id"]))
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(session["display"]), str(xauthority), str(rfb),
         str(daemon.socket), str(session["id"])],
        user=mallory.uid, group=mallory.gid, extra_groups=[], env={"PATH": "/usr/bin:/bin",
                                                                    "HOME": mallory.home},
        capture_output=True, text=True, timeout=60, cwd="/",
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout)
    assert found["x_without_cookie"] != "connected"
    assert found["cookie_file"] == "PermissionError"
    assert found["rfb"] == "PermissionError"
    assert found["whoami"] == mallory.name  # the API knows who asks, whatever they claim
    assert found["thumbnail"] == 403
    assert found["logoff"] == 403
    assert user_pids(ana.uid)  # and ana's session runs on


def open_new_window_as(user: TestUser, display: str, xauthority: Path) -> subprocess.Popen[bytes]:
    """A program inside the session opens a window after the block, as a user could."""
    cookie = Path(user.home) / ".Xauthority-copy"
    cookie.write_bytes(xauthority.read_bytes())
    os.chown(cookie, user.uid, user.gid)
    return subprocess.Popen(["xterm", "-geometry", "80x24+0+0"], user=user.uid, group=user.gid,
                            env={"DISPLAY": display, "XAUTHORITY": str(cookie), "HOME": user.home,
                                 "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=user.home)


def topmost_is_the_cover(display: str, xauthority: Path) -> bool:
    with x11.connection(Screen(display, str(xauthority))) as conn:
        top = conn.screen().root.query_tree().children[-1]
        return bool(top.get_wm_class() == (x11.HELPER_CLASS, "Polydesk"))


def test_block_holds_against_the_keys_that_broke_other_tools(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana = make_user("ana")
    plant_xsession(ana, "#!/bin/sh\nexec openbox --startup 'xterm -e sh'\n")
    session = logon(daemon, ana)
    session_id, display = str(session["id"]), str(session["display"])
    xauthority, rfb = session_paths(daemon, session_id)
    client = RfbClient(str(rfb))
    newcomer: subprocess.Popen[bytes] | None = None
    try:
        wait_for(lambda: len(user_pids(ana.uid)) >= 4)
        time.sleep(0.5)
        before = set(user_pids(ana.uid))
        assert daemon.cli("block", session_id).returncode == 0
        mark = Path(ana.home) / "escaped"
        client.press(ALT, F4)  # close the focused window
        client.press(CTRL, ALT, BACKSPACE)  # kill the X server, where zapping is on
        client.press(ALT, TAB)  # switch away from the cover
        for x, y in ((5, 5), (640, 400), (1275, 795), (20, 780)):
            client.click(x, y)
            client.click(x, y, button=3)
        client.type(f"touch {mark}\n")
        newcomer = open_new_window_as(ana, display, xauthority)
        time.sleep(1.5)
        assert not mark.exists(), "typing reached the session while it was blocked"
        assert before <= set(user_pids(ana.uid)), "a window or the X server was closed"
        assert topmost_is_the_cover(display, xauthority), "a new window rose above the cover"
        assert [s["blocked"] for s in daemon.sessions()] == [True]
    finally:
        client.close()
        if newcomer is not None:
            newcomer.kill()
            newcomer.wait()


def test_the_x_display_refuses_clients_without_the_cookie(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    session = logon(daemon, make_user("ana"))
    xauthority, _ = session_paths(daemon, str(session["id"]))
    env = {"PATH": "/usr/bin:/bin", "XAUTHORITY": "/nonexistent"}
    without = subprocess.run(["xdpyinfo", "-display", str(session["display"])], env=env,
                             capture_output=True, text=True, timeout=30)
    assert without.returncode != 0, "even root without the session's cookie must be refused"
    env["XAUTHORITY"] = str(xauthority)
    with_cookie = subprocess.run(["xdpyinfo", "-display", str(session["display"])], env=env,
                                 capture_output=True, text=True, timeout=30)
    assert with_cookie.returncode == 0, with_cookie.stderr
