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

from tests.conftest import Daemon
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
