"""The station bridge, /api/v1/sessions/{id}/vnc, at the RFB level: who is refused and how, what
a station may send, connection records; and independent VNC clients (our RFB reader, vncdotool
through a TCP relay) completing the handshake and getting frames over it."""

from __future__ import annotations

import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageStat
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import unix_connect
from Xlib import X

from polydesk.core.screen import Screen
from polydesk.system.x11 import client as x11
from tests.harness import Daemon, wait_for
from tests.rfb import RfbClient
from tests.users import TestUser
from tests.web.stationclient import TcpRelay, WsSocket, refusal, station, vnc_url
from tests.web.webclient import COOKIE, Room, logon, signin, socket_client


def cookie(client: httpx.Client, daemon: Daemon) -> dict[str, str]:
    """What the browser sends on its own page's WebSocket handshake."""
    return {"Cookie": f"{COOKIE}={client.cookies[COOKIE]}", "Origin": daemon.url}


def token_for(daemon: Daemon, user: TestUser) -> dict[str, str]:
    with socket_client(daemon) as root:
        answer = root.post("/api/v1/tokens", json={"user": user.name, "note": "station test"})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['token']}"}


def test_refusals_come_before_the_websocket(room: Room) -> None:
    daemon = room.daemon
    a, boss = logon(daemon, room.ana), logon(daemon, room.admin)
    with signin(daemon, room.ana) as ana, signin(daemon, room.bia) as bia, \
            signin(daemon, room.teacher) as teacher:
        # nobody: 401; another user's session, in any mode: 403; a Dashboard user as "own": 403
        assert refusal(daemon, a, {"Origin": daemon.url})[0] == 401
        for mode in ("own", "view", "control"):
            status, body = refusal(daemon, a, cookie(bia, daemon), mode)
            assert status == 403 and body["error"]["code"] == "not-permitted", (mode, body)
        assert refusal(daemon, a, cookie(teacher, daemon), "own")[0] == 403
        # only administrators may watch an administrator's session
        assert refusal(daemon, boss, cookie(teacher, daemon), "view")[0] == 403
        # the right cookie on a page of another site (cross-site WebSocket hijacking): 403
        status, body = refusal(daemon, a, {**cookie(ana, daemon), "Origin": "http://evil.example"})
        assert status == 403 and "another site" in body["error"]["message"]
        # an unknown session names its id; a mode that is not one: 400
        status, body = refusal(daemon, "4242", cookie(ana, daemon))
        assert status == 404 and "4242" in body["error"]["message"]
        assert refusal(daemon, a, cookie(ana, daemon), "steal")[0] == 400
        # allowed, but in-memory sessions have no screen: 409, and nothing is left attached
        status, body = refusal(daemon, a, cookie(teacher, daemon), "view")
        assert status == 409 and body["error"]["code"] == "no-screen"

        # the refusals are in the audit log; the connection that was let in is in the records
        with socket_client(daemon) as root:
            audit = root.get("/api/v1/audit", params={"limit": 50}).json()
        refused = [(r["caller"], r["action"], r["detail"]["mode"]) for r in audit
                   if r["action"] in ("view", "control") and not r["allowed"]]
        assert (room.bia.name, "view", "view") in refused and (room.teacher.name, "view", "view") in refused
        rows = teacher.get(f"/api/v1/sessions/{a}/connections").json()
        assert [(r["user"], r["mode"]) for r in rows] == [(room.teacher.name, "view")]
        assert rows[0]["disconnected_at"] >= rows[0]["connected_at"]
        assert ana.get(f"/api/v1/sessions/{a}/connections").status_code == 200  # the owner
        assert bia.get(f"/api/v1/sessions/{a}/connections").status_code == 403


def test_own_station_over_the_bridge_types_and_disconnects(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, teacher = make_user("ana"), make_user("tch", "dashboard")
    a = logon(daemon, ana)
    with signin(daemon, ana) as browser, station(daemon, a, cookie(browser, daemon)) as rfb:
        assert (rfb.width, rfb.height) == (1280, 800)
        pixels = rfb.framebuffer()
        assert len(set(pixels[i:i + 4] for i in range(0, len(pixels), 4 * 97))) > 2  # not one colour
        rfb.type("touch from-the-bridge\n")
        wait_for(lambda: (Path(ana.home) / "from-the-bridge").exists(), what="the typed command", timeout=20)
        session = next(s for s in daemon.sessions() if s["id"] == a)
        assert session["state"] == "active" and session["client"].startswith("127.0.0.1 ")

        # a Dashboard user who only views gets the same frames; its keys never reach the session
        with signin(daemon, teacher) as dash, station(daemon, a, cookie(dash, daemon), "view") as view:
            assert len(view.framebuffer()) == 1280 * 800 * 4
            view.type("touch from-a-viewer\n")
            rfb.type("touch after-the-viewer\n")  # the owner's keys still do, after the viewer's
            wait_for(lambda: (Path(ana.home) / "after-the-viewer").exists(),
                     what="the owner's command", timeout=20)
            assert not (Path(ana.home) / "from-a-viewer").exists()

        # blocked: the station still sees the screen, but its keys are dropped at the bridge
        with socket_client(daemon) as root:
            assert root.post("/api/v1/sessions/block", json={"ids": [a]}).status_code == 200
            rfb.type("touch while-blocked\n")
            time.sleep(1.5)
            assert not (Path(ana.home) / "while-blocked").exists()
            assert root.post("/api/v1/sessions/unblock", json={"ids": [a]}).status_code == 200
        rfb.type("\x08" * 30 + "touch after-unblock\n")
        wait_for(lambda: (Path(ana.home) / "after-unblock").exists(), what="input after unblock", timeout=20)
        assert not (Path(ana.home) / "while-blocked").exists()

    # the station is gone: within a few seconds the session is disconnected, still running
    wait_for(lambda: next(s for s in daemon.sessions() if s["id"] == a)["state"] == "disconnected",
             timeout=10, what="the session to be disconnected")
    with socket_client(daemon) as root:
        rows = root.get(f"/api/v1/sessions/{a}/connections").json()
    assert [(r["user"], r["mode"]) for r in rows] == [(ana.name, "own"), (teacher.name, "view")]
    assert all(r["disconnected_at"] is not None and r["client"].startswith("127.0.0.1 ") for r in rows)


def test_a_second_station_takes_over_and_the_first_is_told(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana = make_user("ana")
    a = logon(daemon, ana)
    with station(daemon, a, token_for(daemon, ana)) as first:
        first.framebuffer()
        with signin(daemon, ana) as browser, station(daemon, a, cookie(browser, daemon)) as second:
            assert isinstance(first.sock, WsSocket)
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    first.sock.ws.recv(timeout=10)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                4000, "Disconnected: this session was opened elsewhere")
            assert len(second.framebuffer()) == 1280 * 800 * 4
            session = next(s for s in daemon.sessions() if s["id"] == a)
            assert session["state"] == "active" and "Python" in session["client"]  # the newer one

    # the Unix socket's peer (root: an administrator) may watch, but not take ana's desk as its own
    uri = f"ws://polydesk/api/v1/sessions/{a}/vnc?mode="
    with pytest.raises(InvalidStatus) as refused:
        unix_connect(str(daemon.socket), uri + "own")
    assert refused.value.response.status_code == 403
    with unix_connect(str(daemon.socket), uri + "view", max_size=None) as ws:
        watcher = RfbClient.over(WsSocket(ws))
        assert len(watcher.framebuffer()) == 1280 * 800 * 4
        session = next(s for s in daemon.sessions() if s["id"] == a)
        assert session["client"] is None or "local" not in session["client"]  # a viewer is not the CLIENT


def test_vncdotool_gets_frames_through_a_relay(daemon: Daemon, make_user: Callable[..., TestUser],
                                               tmp_path: Path) -> None:
    ana = make_user("ana")
    a = logon(daemon, ana)
    relay = TcpRelay(vnc_url(daemon, a), token_for(daemon, ana))
    try:
        shot = tmp_path / "screen.png"
        vncdo = Path(sys.executable).parent / "vncdo"
        result = subprocess.run([str(vncdo), "-s", f"127.0.0.1::{relay.port}", "-t", "30",
                                 "capture", str(shot)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        with Image.open(shot) as image:
            assert image.size == (1280, 800)
            spread = ImageStat.Stat(image.convert("L")).stddev[0]
        assert spread > 8  # the desktop and its xterm, not a blank frame
    finally:
        relay.close()
    with socket_client(daemon) as root:
        rows = root.get(f"/api/v1/sessions/{a}/connections").json()
    assert rows and rows[0]["mode"] == "own" and "websockets" in rows[0]["client"].lower()


EXTENDED_CLIPBOARD = -1063131698  # the pseudo-encoding 0xc0a1e5ce
CAPS, REQUEST, PEEK, NOTIFY, PROVIDE, UTF8 = (1 << 24), (1 << 25), (1 << 26), (1 << 27), (1 << 28), 1


def extended_cut(flags: int, data: bytes = b"") -> bytes:
    body = struct.pack(">I", flags) + data
    return struct.pack(">Bxxxi", 6, -len(body)) + body


def clipboard_of(daemon: Daemon, session_id: str, answer: Callable[[], None] = lambda: None) -> str:
    """What a program of the session gets when it pastes (UTF8_STRING from CLIPBOARD); ``answer``
    runs while it waits (a station asked for the data answers then)."""
    session = next(s for s in daemon.sessions() if s["id"] == session_id)
    xauthority = daemon.runtime_dir / "sessions" / session_id / "Xauthority"
    with x11.connection(Screen(str(session["display"]), str(xauthority))) as conn:
        window = conn.screen().root.create_window(0, 0, 1, 1, 0, X.CopyFromParent)
        clipboard, utf8, target = (conn.intern_atom(name) for name in
                                   ("CLIPBOARD", "UTF8_STRING", "POLYDESK_PASTE"))
        window.convert_selection(clipboard, utf8, target, X.CurrentTime)
        conn.flush()
        answer()
        deadline = time.monotonic() + 10
        while not any(conn.next_event().type == X.SelectionNotify for _ in range(conn.pending_events())):
            assert time.monotonic() < deadline, "the paste got no answer"
            time.sleep(0.05)
        prop = window.get_full_property(target, X.AnyPropertyType)
        return bytes(prop.value).decode() if prop is not None else ""


def test_the_clipboard_crosses_the_bridge_in_both_of_its_forms(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    """The bridge writes clipboard messages again (tests/web/test_rfbfilter.py): Xvnc still takes
    them, the plain Latin-1 form and the extended one (UTF-8, zlib) that noVNC speaks."""
    ana = make_user("ana")
    a = logon(daemon, ana)
    with signin(daemon, ana) as browser:
        with station(daemon, a, cookie(browser, daemon)) as rfb:
            rfb.sock.sendall(struct.pack(">BxxxI", 6, 5) + "café".encode("latin-1") + b"!")
            wait_for(lambda: clipboard_of(daemon, a) == "café!", what="the plain clipboard text", timeout=20)
        with station(daemon, a, cookie(browser, daemon)) as rfb:
            rfb.sock.sendall(struct.pack(">BxH2i", 2, 2, 0, EXTENDED_CLIPBOARD))
            kind, caps = rfb.server_message()  # Xvnc's capabilities
            assert kind == 3 and struct.unpack_from(">I", caps)[0] & CAPS, caps
            rfb.sock.sendall(extended_cut(CAPS | REQUEST | PEEK | NOTIFY | PROVIDE | UTF8, bytes(4))
                             + extended_cut(NOTIFY | UTF8))  # "I have text", as noVNC says it

            def provide() -> None:  # Xvnc asks the station for it when a program pastes
                kind, request = rfb.server_message()
                assert kind == 3 and struct.unpack(">I", request)[0] == REQUEST | UTF8, request
                text = "café ✓ 日本\0".encode()
                deflater = zlib.compressobj()
                data = deflater.compress(struct.pack(">I", len(text)) + text)
                rfb.sock.sendall(extended_cut(PROVIDE | UTF8, data + deflater.flush(zlib.Z_SYNC_FLUSH)))

            assert clipboard_of(daemon, a, provide) == "café ✓ 日本"
