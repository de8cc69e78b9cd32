"""The daemon's X connections against a hostile X server (issue 13, medium 4): a reply that
claims 4 GiB, an event flood, a trickle, and a server that is not the session's own."""

from __future__ import annotations

import contextlib
import os
import resource
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from polydesk.core.screen import Screen, Server
from polydesk.system import peer
from polydesk.system.x11 import xserver
from polydesk.system.x11.xwire import MAX_REPLY, Wire, WireError


def setup_reply() -> bytes:
    """A valid little-endian connection setup: one 64x64 screen of depth 24."""
    vendor = b"fake"
    fixed = struct.pack("<IIIIHHBBBBBBBBxxxx", 1, 0x200000, 0x1FFFFF, 0, len(vendor), 65535,
                        1, 1, 0, 0, 32, 32, 8, 255)
    pixmap = struct.pack("<BBBxxxxx", 24, 32, 32)
    screen = struct.pack("<IIIIIHHHHHHIBBBB", 0x100, 0x20, 0xFFFFFF, 0, 0, 64, 64, 20, 20, 1, 1,
                         0x21, 0, 0, 24, 1)
    depth = struct.pack("<BxHxxxx", 24, 1)
    visual = struct.pack("<IBBHIIIxxxx", 0x21, 4, 8, 256, 0xFF0000, 0xFF00, 0xFF)
    data = fixed + vendor + pixmap + screen + depth + visual
    return struct.pack("<BxHHH", 1, 11, 0, len(data) // 4) + data


@contextlib.contextmanager
def hostile_server(answer: Callable[[socket.socket], None]) -> Iterator[tuple[str, int, list[bytes]]]:
    """A fake X server on a private display number's abstract name, run by this process."""
    for number in range(900, 999):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(f"\0/tmp/.X11-unix/X{number}")
            break
        except OSError:
            sock.close()
    else:
        pytest.fail("no free display number for the fake server")
    sock.listen(4)
    stop = threading.Event()
    requests: list[bytes] = []

    def serve() -> None:
        sock.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            with conn, contextlib.suppress(OSError):
                conn.settimeout(5)  # a client that stops reading never holds the test
                requests.append(conn.recv(4096))  # the client's setup request, with its cookie
                conn.sendall(setup_reply())
                answer(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f":{number}", number, requests
    finally:
        stop.set()
        thread.join()
        sock.close()


@pytest.fixture
def xauthority() -> Iterator[Path]:
    from polydesk.system.x11 import xauth
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "Xauthority"
        xauth.write_xauthority(path, 0, xauth.new_cookie(), os.getuid(), os.getgid())
        yield path


def me() -> Server:
    from polydesk.system import processes
    return Server(os.getpid(), processes.start_time(os.getpid()))


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_a_reply_claiming_4_gib_ends_the_connection_before_it_is_read(xauthority: Path) -> None:
    def liar(conn: socket.socket) -> None:
        conn.recv(4096)
        conn.sendall(struct.pack("<BBHI24x", 1, 1, 1, 0x3FFFFFFF))  # a reply of 4 GiB follows
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            conn.sendall(b"\0" * 65536)

    before = max_rss_mb()
    with hostile_server(liar) as (display, _, _):
        wire = Wire(display, xauthority, me(), timeout=5)
        started = time.monotonic()
        with pytest.raises(WireError, match="announced a reply of 4294967324 bytes"):
            wire.query_extension("MIT-SCREEN-SAVER")
        wire.close()
    assert time.monotonic() - started < 1
    assert max_rss_mb() - before < 64
    assert MAX_REPLY < 100 << 20


def test_an_event_flood_and_a_trickle_end_the_call(xauthority: Path) -> None:
    def flood(conn: socket.socket) -> None:
        conn.recv(4096)
        event = struct.pack("<BxH28x", 22, 1)  # ConfigureNotify, never the reply
        for _ in range(10_000):
            conn.sendall(event * 16)

    with hostile_server(flood) as (display, _, _):
        wire = Wire(display, xauthority, me(), timeout=5)
        with pytest.raises(WireError, match="events unasked"):
            wire.sync()
        wire.close()

    def trickle(conn: socket.socket) -> None:
        conn.recv(4096)
        for byte in struct.pack("<BBHI24x", 1, 1, 1, 0):
            conn.sendall(bytes([byte]))
            time.sleep(0.4)  # each byte within the socket timeout, the whole far beyond

    with hostile_server(trickle) as (display, _, _):
        wire = Wire(display, xauthority, me(), timeout=1)
        started = time.monotonic()
        with pytest.raises(WireError):
            wire.sync()
        wire.close()
    assert time.monotonic() - started < 2


def test_a_server_that_is_not_the_sessions_own_gets_nothing(xauthority: Path) -> None:
    with hostile_server(lambda conn: None) as (display, number, requests):
        someone_else = Server(1, None)  # the session's server is init, say: not us
        with pytest.raises(WireError, match="not by the session's server"):
            Wire(display, xauthority, someone_else, timeout=2)
        with pytest.raises(Exception, match="not by the session's server"):
            xserver.handshake(display, b"0" * 16, someone_else)
        with pytest.raises(Exception, match="not by the session's server"):
            xserver.idle_ms(Screen(display, str(xauthority), 1, None))
        holder = peer.abstract_listener(number)
        assert holder is not None and holder.pid == os.getpid()
        deadline = time.monotonic() + 5
        while len(requests) < 4 and time.monotonic() < deadline:  # all four connections seen
            time.sleep(0.05)
    assert len(requests) == 4 and all(r == b"" for r in requests), requests  # no cookie reached it
