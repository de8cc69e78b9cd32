"""Thumbnails of real Xvnc sessions through a real daemon: the real desktop, following its changes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from collections.abc import Callable

import httpx
from PIL import Image, ImageStat
from websockets.sync.client import unix_connect

from tests.harness import Daemon, wait_for
from tests.users import TestUser
from tests.web.webclient import logon, socket_client


def picture(client: httpx.Client, session_id: str, size: str = "large") -> tuple[Image.Image, str]:
    answer = client.get(f"/api/v1/sessions/{session_id}/thumbnail", params={"size": size})
    assert answer.status_code == 200, answer.text
    return Image.open(io.BytesIO(answer.content)).convert("RGB"), answer.headers["etag"]


def not_blank(image: Image.Image) -> bool:
    """More than one flat colour: a real desktop has windows, text, edges."""
    return max(ImageStat.Stat(image).stddev) > 8


def set_background(daemon: Daemon, session_id: str, display: str, color: str) -> None:
    """Change the desktop from outside, as root with the session's own cookie."""
    xauthority = daemon.runtime_dir / "sessions" / session_id / "Xauthority"
    env = {"PATH": os.environ["PATH"], "DISPLAY": display, "XAUTHORITY": str(xauthority)}
    subprocess.run(["xsetroot", "-solid", color], env=env, check=True, timeout=10)


def test_thumbnail_shows_the_real_desktop_and_follows_it(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana = make_user("ana")
    a = logon(daemon, ana)
    with socket_client(daemon) as root:
        display = root.get(f"/api/v1/sessions/{a}").json()["display"]
        set_background(daemon, a, display, "#2050a0")
        deadline = time.monotonic() + 20
        while True:  # the desktop (openbox, xterm) takes a moment to draw
            image, etag = picture(root, a)
            if not_blank(image) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert image.size == (480, 300)
        assert not_blank(image)
        # the same pixels: the same ETag, and a 304 for a client that has them
        again = root.get(f"/api/v1/sessions/{a}/thumbnail", params={"size": "large"},
                         headers={"If-None-Match": etag})
        assert again.status_code in (200, 304)
        url = "ws://polydesk/api/v1/events?thumbnails=true"
        with unix_connect(str(daemon.socket), url, open_timeout=10) as ws:
            assert json.loads(ws.recv(timeout=10))["kind"] == "snapshot"
            set_background(daemon, a, display, "#c02020")
            changed = None
            while changed is None:
                message = json.loads(ws.recv(timeout=10))
                if message["kind"] == "thumbnail-changed" and message["session_id"] == a:
                    changed = message
        red, new_etag = picture(root, a)
        assert new_etag != etag
        r, g, b = (int(v) for v in ImageStat.Stat(red).median)
        assert r > 150 and g < 80 and b < 80, (r, g, b)  # the background, now red, fills most of it
        assert int(root.get(f"/api/v1/sessions/{a}/thumbnail", params={"size": "large"})
                   .headers["x-thumbnail-version"]) == changed["detail"]["version"]


def daemon_x_clients(daemon: Daemon, session_id: str, display: str) -> int:
    """How many X connections the daemon has open to the display (X-Resource: client pids)."""
    from Xlib.ext import res

    from polydesk.core.screen import Screen
    from polydesk.system.x11.client import connection

    assert daemon.proc is not None
    xauthority = daemon.runtime_dir / "sessions" / session_id / "Xauthority"
    with connection(Screen(display, str(xauthority))) as conn:
        ids = conn.res_query_client_ids([{"client": 0, "mask": res.LocalClientPIDMask}]).ids
    return sum(1 for i in ids if i.spec.mask == res.LocalClientPIDMask and i.value[0] == daemon.proc.pid)


def test_one_capture_connection_for_every_dashboard_and_none_without(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    a = logon(daemon, make_user("ana"))
    with socket_client(daemon) as root:
        display = root.get(f"/api/v1/sessions/{a}").json()["display"]
    assert daemon_x_clients(daemon, a, display) == 0  # nobody watches: not even connected
    url = "ws://polydesk/api/v1/events?thumbnails=true"
    with unix_connect(str(daemon.socket), url, open_timeout=10) as one, \
            unix_connect(str(daemon.socket), url, open_timeout=10) as two:
        for ws in (one, two):
            assert json.loads(ws.recv(timeout=10))["kind"] == "snapshot"
        wait_for(lambda: daemon_x_clients(daemon, a, display) >= 1)
        time.sleep(1)
        assert daemon_x_clients(daemon, a, display) == 1  # one capture, shared
    wait_for(lambda: daemon_x_clients(daemon, a, display) == 0)  # both gone: it closes


def test_damage_and_shared_memory_on_xvnc(daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    """The capture path on a real Xvnc: DAMAGE says exactly what changed, MIT-SHM reads it,
    nothing is read while the screen is still, and no shared memory is left behind."""
    from polydesk.core.screen import Screen
    from polydesk.thumbnails.capture import ScreenReader
    from polydesk.thumbnails.geometry import area

    a = logon(daemon, make_user("ana"))
    with socket_client(daemon) as root:
        display = root.get(f"/api/v1/sessions/{a}").json()["display"]
    xauthority = daemon.runtime_dir / "sessions" / a / "Xauthority"
    reader = ScreenReader(Screen(display, str(xauthority)))
    try:
        assert reader.uses_damage and reader.uses_shm and reader.size == (1280, 800)
        assert shm_segments() == 1
        assert reader.changes() == [(0, 0, 1280, 800)]  # a new DAMAGE starts with everything
        full = reader.read()
        assert full.size == (1280, 800)
        time.sleep(3)  # the desktop finishes drawing
        reader.changes()
        reader.settle()
        set_background(daemon, a, display, "#10e040")
        wait_for(reader.settle, 5)
        boxes = reader.changes()
        assert boxes, boxes
        assert sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes) > 1280 * 800 // 3
        r, g, b = (int(v) for v in ImageStat.Stat(reader.read(max(boxes, key=area))).median)
        assert g > 200 and r < 40 and b < 90, (r, g, b)
        time.sleep(0.5)
        assert not reader.settle() and reader.changes() == []  # still: nothing to read
    finally:
        reader.close()
    wait_for(lambda: shm_segments() == 0, 5)  # the server let go of it: it is gone


def shm_segments() -> int:
    """System V shared memory segments this process made that still exist."""
    with open("/proc/sysvipc/shm") as file:
        rows = [line.split() for line in file.readlines()[1:]]
    return sum(1 for row in rows if int(row[4]) == os.getpid())  # cpid
