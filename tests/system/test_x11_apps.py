"""The applications of a display as ``system.x11.apps`` lists them, where the X server cannot tell
a window's pid (no X-Resource extension): the pid the window claims is given, and marked so.
With the extension (every Xvnc Polydesk starts) the server's own answer: tests/test_apps.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from Xlib import display as xdisplay

from polydesk.core.screen import Screen
from polydesk.system import processes as procs
from polydesk.system.x11 import apps as xapps
from polydesk.system.x11 import xauth, xserver
from tests.harness import scratch_dir, wait_for


@pytest.fixture
def bare_display() -> Iterator[Screen]:
    """A private Xvnc without the X-Resource extension, as root."""
    number = next(n for n in range(930, 999) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    auth = scratch_dir("pdt-xres-") / "Xauthority"
    cookie = xauth.new_cookie()
    xauth.write_xauthority(auth, number, cookie, 0, 0)
    server = subprocess.Popen(["Xvnc", f":{number}", "-auth", str(auth), "-nolisten", "tcp", "-rfbport", "-1",
                               "-SecurityTypes", "None", "-extension", "X-Resource"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    screen = Screen(f":{number}", str(auth), server.pid, procs.start_time(server.pid))
    try:
        wait_for(lambda: xserver.handshake(screen.display, cookie, screen.server), timeout=10)
        yield screen
    finally:
        server.kill()
        server.wait()
        Path(f"/tmp/.X11-unix/X{number}").unlink(missing_ok=True)
        Path(f"/tmp/.X{number}-lock").unlink(missing_ok=True)
        auth.unlink()
        auth.parent.rmdir()


def test_without_x_resource_the_claimed_pid_is_marked(bare_display: Screen) -> None:
    os.environ["XAUTHORITY"] = bare_display.xauthority
    try:
        conn = xdisplay.Display(bare_display.display)
    finally:
        os.environ.pop("XAUTHORITY")
    try:
        window = conn.screen().root.create_window(0, 0, 100, 50, 0, conn.screen().root_depth)
        window.set_wm_class("claims", "Claims")
        window.set_wm_name("a liar")
        window.change_property(conn.intern_atom("_NET_WM_PID"), conn.intern_atom("CARDINAL"), 32, [4242])
        window.map()
        conn.sync()
        listed = xapps.list_windows(bare_display)
    finally:
        conn.close()
    assert [(w.title, w.klass, w.pid, w.pid_source) for w in listed] == [
        ("a liar", "Claims", 4242, xapps.PID_PROPERTY)]
