"""Projection on real Xvnc sessions, read at the targets' own stations through the bridge:
the source's pixels arrive, nothing a target sends reaches anything, the student cannot get
their desktop back from inside, Stop gives it back within a second, the source's log-off ends
it, and the roles hold. (The use cases' corners: tests/manager/test_projection.py.)"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from polydesk.core.screen import Screen
from polydesk.system.x11 import xserver
from tests.harness import Daemon, wait_for
from tests.rfb import RfbClient, key_events
from tests.screens import fill
from tests.users import TestUser, user_pids
from tests.web.stationclient import TcpRelay, WsSocket, station, vnc_url
from tests.web.test_station_bridge import token_for
from tests.web.webclient import logon, socket_client

ORANGE, NAVY = 0xFF8000, 0x204080


def pixel(pixels: bytes, x: int, y: int, width: int = 1280) -> tuple[int, int, int]:
    """A pixel of what the relay sends: its bytes are R, G, B, X."""
    at = (y * width + x) * 4
    return pixels[at], pixels[at + 1], pixels[at + 2]


def changed_box(rfb: RfbClient, timeout: float = 5.0) -> tuple[int, int, int, int]:
    """Ask for what changed; the box around the Raw rectangles of the next update."""
    rfb.sock.sendall(struct.pack(">BBHHHH", 3, 1, 0, 0, rfb.width, rfb.height))
    rfb.sock.settimeout(timeout)
    (kind,) = rfb._read(1)
    assert kind == 0, kind
    (count,) = struct.unpack(">xH", rfb._read(3))
    boxes = []
    for _ in range(count):
        x, y, w, h, encoding = struct.unpack(">HHHHi", rfb._read(12))
        assert encoding == 0, encoding
        rfb._read(w * h * 4)
        boxes.append((x, y, x + w, y + h))
    return (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes),
            max(b[3] for b in boxes))


def close_code(rfb: RfbClient, timeout: float = 5.0) -> int | None:
    """The code the bridge closed the station with, if it did within ``timeout``."""
    if not rfb.closed_by_server(timeout):
        return None
    sock = rfb.sock
    assert isinstance(sock, WsSocket)
    return sock.ws.close_code


def screen_of(daemon: Daemon, session_id: str) -> Screen:
    session = next(s for s in daemon.sessions() if s["id"] == session_id)
    return Screen(str(session["display"]), str(daemon.runtime_dir / "sessions" / session_id / "Xauthority"))


def projection_of(daemon: Daemon, session_id: str) -> dict[str, object] | None:
    projection: dict[str, object] | None = next(
        s for s in daemon.sessions() if s["id"] == session_id)["projection"]
    return projection


def test_the_source_reaches_every_target_station_and_nothing_comes_back(
    daemon: Daemon, make_user: Callable[..., TestUser], tmp_path: Path
) -> None:
    teacher, boss = make_user("tch", "dashboard"), make_user("boss", "admin")
    ana, bia, caio = make_user("ana"), make_user("bia"), make_user("caio")
    a, b, c, z = (logon(daemon, u) for u in (ana, bia, caio, boss))
    source = screen_of(daemon, a)
    fill(daemon, a, source.display, (0, 0, 1280, 800), NAVY)
    fill(daemon, a, source.display, (100, 100, 300, 200), ORANGE)
    bia_key, caio_key = token_for(daemon, bia), token_for(daemon, caio)

    # the roles: a student projects nothing; a Dashboard user not onto an administrator
    by_student = daemon.cli("project", a, "--to", c, "--yes", user=bia)
    assert by_student.returncode == 3, by_student.stderr
    onto_admin = daemon.cli("project", a, "--to", z, "--yes", user=teacher)
    assert onto_admin.returncode == 3 and "administrators" in onto_admin.stderr + onto_admin.stdout

    with station(daemon, b, bia_key) as before:
        result = daemon.cli("project", a, "--to", f"{b},{c}", "--yes", user=teacher)
        assert result.returncode == 0, result.stderr
        assert close_code(before) == 4100  # connect again at once: there is something else to show
    assert projection_of(daemon, b) == {"source": a, "source_user": ana.name, "by": teacher.name,
                                        "since": projection_of(daemon, b)["since"]}  # type: ignore[index]
    assert projection_of(daemon, a) is None and projection_of(daemon, z) is None

    with station(daemon, b, bia_key) as at_bia, station(daemon, c, caio_key) as at_caio:
        for rfb in (at_bia, at_caio):
            assert ana.name in rfb.name and (rfb.width, rfb.height) == (1280, 800)
            pixels = rfb.framebuffer()
            assert pixel(pixels, 150, 150) == (0xFF, 0x80, 0x00)
            assert pixel(pixels, 20, 700) == (0x20, 0x40, 0x80)
        fill(daemon, a, source.display, (120, 120, 184, 160), NAVY)  # a change where no window is
        for rfb in (at_bia, at_caio):
            box = changed_box(rfb)
            assert box[0] <= 120 and box[1] <= 120 and box[2] >= 184 and box[3] >= 160, box

        # what the targets send reaches nothing: keys, pointer, clipboard, a resize
        idle_before = xserver.idle_ms(source)
        at_bia.sock.sendall(key_events("touch from-a-target\n"))
        at_bia.click(200, 150)
        at_bia.sock.sendall(struct.pack(">BxxxI", 6, 4) + b"pwnd")
        at_bia.sock.sendall(struct.pack(">BxHHBx", 251, 800, 600, 1)
                            + struct.pack(">IHHHHI", 0, 0, 0, 800, 600, 0))
        time.sleep(1.0)
        assert xserver.idle_ms(source) >= idle_before + 900, "input reached the source"
        assert not (Path(ana.home) / "from-a-target").exists()
        assert not (Path(bia.home) / "from-a-target").exists()
        fill(daemon, a, source.display, (120, 120, 184, 160), ORANGE)
        assert changed_box(at_caio)  # the others go on as before

        # the student cannot get their desktop back from inside: killing what runs in their
        # session (from an SSH login, say) only ends it, as leaving their desktop does
        for pid in user_pids(caio.uid):
            if b"Xvnc" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        assert close_code(at_caio, 10) == 4000
        assert isinstance(at_caio.sock, WsSocket) and "ended" in str(at_caio.sock.ws.close_reason)
        assert close_code(at_bia, 0.5) is None and projection_of(daemon, b) is not None
    # a native VNC client (vncdotool, no Tight, a pixel layout of its own) through a TCP relay
    tcp = TcpRelay(vnc_url(daemon, b), bia_key)
    try:
        shot = tmp_path / "shown.png"
        vncdo = Path(sys.executable).parent / "vncdo"
        captured = subprocess.run([str(vncdo), "-s", f"127.0.0.1::{tcp.port}", "-t", "30", "capture",
                                   str(shot)], capture_output=True, text=True, timeout=60)
        assert captured.returncode == 0, captured.stderr
        with Image.open(shot) as image:
            assert image.convert("RGB").getpixel((150, 150)) == (0xFF, 0x80, 0x00)
    finally:
        tcp.close()

    with station(daemon, b, bia_key) as again, station(daemon, b, token_for(daemon, bia)) as second:
        assert close_code(again) == 4000  # taken over by the second, which is shown the projection
        assert pixel(second.framebuffer(), 150, 150) == (0xFF, 0x80, 0x00)

        # Stop: within a second, the station shows her own desktop again, with no new logon
        with socket_client(daemon) as root:
            started = time.monotonic()
            assert root.post("/api/v1/sessions/project/stop", json={"source": a}).status_code == 200
        assert close_code(second) == 4100
        with station(daemon, b, bia_key) as own:
            own_pixels = own.framebuffer()
            took = time.monotonic() - started
        print(f"stop -> own desktop at the station: {took:.3f} s")
        assert took < 1.0, f"the station got its own desktop back after {took:.2f} s"
        assert own_pixels[150 * 1280 * 4 + 150 * 4:][:3] != bytes([0x00, 0x80, 0xFF])  # not the source
        assert projection_of(daemon, b) is None and c not in {s["id"] for s in daemon.sessions()}

    # the source's log-off ends a projection
    assert daemon.cli("project", a, "--to", b, "--yes", user=teacher).returncode == 0
    assert projection_of(daemon, b) is not None
    assert daemon.cli("logoff", a, "--force", "--yes").returncode == 0
    wait_for(lambda: projection_of(daemon, b) is None, what="the projection to end with its source")
    audit = daemon.cli_json("audit")
    projected = [(r["action"], r["caller"], r["allowed"]) for r in sorted(audit, key=lambda r: r["seq"])
                 if r["action"] in ("project", "stop-projecting")]
    assert projected == [("project", bia.name, False), ("project", teacher.name, False),
                         ("project", teacher.name, True), ("stop-projecting", "root", True),
                         ("project", teacher.name, True), ("stop-projecting", "polydesk", True)]
