"""The station bridge and Xvnc must read a station's stream the same way: a station whose input
the bridge drops (a viewer, a blocked session) must not get keys or pointer events to Xvnc by
making the bridge's reader and Xvnc disagree on where a message starts.

Input is detected at the X server, by its idle time (MIT-SCREEN-SAVER): every key or pointer
event Xvnc hands to the X server resets it, whichever window has the focus or a grab (the
block's cover grabs both), and reading it needs no client of ours inside the session."""

from __future__ import annotations

import contextlib
import os
import random
import struct
import subprocess
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from polydesk.core.screen import Screen
from polydesk.system.x11 import xserver
from tests.harness import Daemon, wait_for
from tests.rfb import hidden_one_byte_ahead, key_events
from tests.rfbfuzz import client_stream, pieces
from tests.users import TestUser
from tests.web.stationclient import closed_with, raw_station, station
from tests.web.test_station_bridge import cookie
from tests.web.webclient import logon, signin

# What TigerVNC's sscanf("RFB %03d.%03d\n") reads as 3.8 and a strict reader might not.
VERSION_TRICKS = (b"RFB 003.+08\n", b"RFB 003.8\n  ")


def no_input_since(daemon: Daemon, session_id: str, since: float) -> bool:
    """True if no key or pointer event reached the session's X server since ``since`` (monotonic)."""
    where = display_of(daemon, session_id)
    elapsed = time.monotonic() - since  # before asking: the answer can only be later
    idle = xserver.idle_ms(Screen(where[0], str(where[1])))
    return idle >= elapsed * 1000 - 2  # the server's clock ticks in whole ms


def owner_types_once_unblocked(daemon: Daemon, owner: TestUser, session_id: str) -> None:
    """The measure is sound: once unblocked, the owner's own station's keys reset the idle time."""
    assert daemon.cli("unblock", session_id).returncode == 0
    with signin(daemon, owner) as browser, station(daemon, session_id, cookie(browser, daemon)) as rfb:
        mark = time.monotonic()
        time.sleep(0.2)
        rfb.type("x")
        wait_for(lambda: not no_input_since(daemon, session_id, mark),
                 what="the idle time to reset", timeout=20)


def display_of(daemon: Daemon, session_id: str) -> tuple[str, Path]:
    """The session's display and cookie (asked of the daemon once: the fuzz asks often)."""
    key = (daemon.runtime_dir, session_id)
    if key not in _DISPLAYS:
        session = next(s for s in daemon.sessions() if s["id"] == session_id)
        _DISPLAYS[key] = str(session["display"]), daemon.runtime_dir / "sessions" / session_id / "Xauthority"
    return _DISPLAYS[key]


_DISPLAYS: dict[tuple[Path, str], tuple[str, Path]] = {}


def as_user(user: TestUser, daemon: Daemon, session_id: str, *argv: str) -> str:
    """Run an X client inside the user's session, as the user (a program they started)."""
    display, xauthority = display_of(daemon, session_id)
    env = {"PATH": "/usr/bin:/bin", "HOME": user.home, "DISPLAY": display, "XAUTHORITY": str(xauthority)}
    result = subprocess.run(argv, env=env, user=user.uid, group=user.gid, capture_output=True,
                            text=True, timeout=30, cwd="/")
    assert result.returncode == 0, result.stderr
    return result.stdout


# The block guard would put Xvnc's input settings back within half a second of the test
# turning them on: without it, the bridge is tested alone (tests/test_local_attacks.py tests the guard).
BRIDGE_ALONE = "block_guard_interval = 0"


def test_a_viewer_cannot_type_through_a_version_xvnc_reads_differently(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, teacher = make_user("ana"), make_user("tch", "dashboard")
    a = logon(daemon, ana)
    marks = [Path(ana.home) / f"typed-by-a-viewer-{i}" for i in range(len(VERSION_TRICKS))]
    closes = []
    with signin(daemon, teacher) as dash:
        for version, mark in zip(VERSION_TRICKS, marks, strict=True):
            with raw_station(daemon, a, cookie(dash, daemon), "view") as ws:
                assert ws.recv(timeout=10) == b"RFB 003.008\n"  # through to Xvnc
                # version; the security type, which a 3.3 reader takes for ClientInit; then what
                # it takes for SetEncodings and Xvnc for a request and the keys of a command
                ws.send(version + b"\x01" + hidden_one_byte_ahead(key_events(f"touch {mark}\n")))
                closes.append(closed_with(ws, timeout=3))
    # the owner's own keys do arrive: the xterm had the focus all along
    control = Path(ana.home) / "typed-by-the-owner"
    with signin(daemon, ana) as browser, station(daemon, a, cookie(browser, daemon)) as rfb:
        rfb.type(f"touch {control}\n")
        wait_for(control.exists, what="the owner's command", timeout=20)
    typed = [mark.name for mark in marks if mark.exists()]
    assert not typed, f"a view-only station typed into the session: {typed}"
    # and the bridge said why it hung up
    assert all(c is not None and c[0] == 4400 and "version" in c[1] for c in closes), closes


def test_a_blocked_station_cannot_type_through_a_version_xvnc_reads_differently(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory(BRIDGE_ALONE)
    ana = make_user("ana")
    a = logon(daemon, ana)
    assert daemon.cli("block", a).returncode == 0
    # A program ana started before the block turns viewer input back on in Xvnc (docs/security.md,
    # out of scope): from there on, only the bridge stands between her station and the session.
    gate = ("AcceptKeyEvents", "AcceptPointerEvents")
    as_user(ana, daemon, a, "vncconfig", *(arg for name in gate for arg in ("-set", f"{name}=1")))
    time.sleep(0.3)
    start = time.monotonic()
    closes = []
    with signin(daemon, ana) as browser:
        for version in VERSION_TRICKS:
            with raw_station(daemon, a, cookie(browser, daemon)) as ws:
                assert ws.recv(timeout=10) == b"RFB 003.008\n"
                pointer = b"".join(bytes([5, 0]) + xy.to_bytes(2, "big") * 2 for xy in (100, 300, 500))
                ws.send(version + b"\x01" + hidden_one_byte_ahead(key_events("touch x\n") + pointer))
                closes.append(closed_with(ws, timeout=3))
    time.sleep(1)
    assert [as_user(ana, daemon, a, "vncconfig", "-get", name).strip() for name in gate] == ["1", "1"], \
        "the test's premise: Xvnc itself accepts viewer input again"
    assert no_input_since(daemon, a, start), "a blocked station got input to the session"
    assert all(c is not None and c[0] == 4400 and "version" in c[1] for c in closes), closes

    owner_types_once_unblocked(daemon, ana, a)


FUZZ_SECONDS = 4.0  # per kind of station (a new seed each run: the cases add up over runs)
FUZZ_CASES = 1500


def fuzz(daemon: Daemon, session_id: str, headers: dict[str, str], mode: str, seed: int) -> int:
    """Send generated client streams through the bridge until the time is up; fail at the first
    one after which the session's X server has seen input. How many were sent."""
    rng = random.Random(seed)
    start = deadline = time.monotonic()
    deadline += FUZZ_SECONDS
    sent: list[tuple[int, bytes]] = []
    while time.monotonic() < deadline and len(sent) < FUZZ_CASES:
        case = rng.randrange(2**32)
        case_rng = random.Random(case)
        data = client_stream(case_rng)
        with raw_station(daemon, session_id, headers, mode) as ws:
            ws.close_timeout = 2
            with contextlib.suppress(ConnectionClosed):
                for piece in pieces(case_rng, data):
                    ws.send(piece)
        sent.append((case, data))
        if len(sent) % 25 == 0 or time.monotonic() >= deadline:
            time.sleep(0.2)  # what the bridge passed on has reached Xvnc
            assert no_input_since(daemon, session_id, start), (
                f"input reached the session from a {mode} station (seed {seed}); the last streams "
                f"(case seed, bytes): {sent[-25:]}")
    print(f"{mode}: {len(sent)} streams in {time.monotonic() - start:.1f} s")
    return len(sent)


def test_generated_streams_from_a_viewer_and_a_blocked_station_never_reach_the_session_as_input(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory(BRIDGE_ALONE)
    seed = int(os.environ.get("POLYDESK_FUZZ_SEED") or random.randrange(2**32))
    ana, teacher = make_user("ana"), make_user("tch", "dashboard")
    a = logon(daemon, ana)
    with signin(daemon, teacher) as dash:
        viewed = fuzz(daemon, a, cookie(dash, daemon), "view", seed)

    assert daemon.cli("block", a).returncode == 0
    gate = ("AcceptKeyEvents", "AcceptPointerEvents")  # as in the test above: only the bridge holds
    as_user(ana, daemon, a, "vncconfig", *(arg for name in gate for arg in ("-set", f"{name}=1")))
    with signin(daemon, ana) as browser:
        blocked = fuzz(daemon, a, cookie(browser, daemon), "own", seed + 1)
    assert [as_user(ana, daemon, a, "vncconfig", "-get", name).strip() for name in gate] == ["1", "1"]
    assert viewed >= 30 and blocked >= 30, (viewed, blocked)  # even on a machine under load
    assert [(s["id"], s["state"] in ("active", "disconnected")) for s in daemon.sessions()] == [(a, True)]

    owner_types_once_unblocked(daemon, ana, a)


def test_a_clipboard_message_cannot_freeze_the_sessions_x_server(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    """Xvnc 1.12 inflates a clipboard "provide" until its declared length is used up: bytes after
    a finished zlib stream make it loop for ever, the whole X server with it (and SIGTERM too)."""
    ana = make_user("ana")
    a = logon(daemon, ana)
    text = b"hello\0"
    deflater = zlib.compressobj()
    finished = deflater.compress(struct.pack(">I", len(text)) + text) + deflater.flush(zlib.Z_FINISH)
    body = struct.pack(">I", (1 << 28) | 1) + finished + b"more"  # provide, UTF-8; then 4 bytes
    with signin(daemon, ana) as browser, station(daemon, a, cookie(browser, daemon)) as rfb:
        rfb.sock.sendall(struct.pack(">Bxxxi", 6, -len(body)) + body)
        time.sleep(1)
        assert len(rfb.framebuffer(timeout=5)) == 1280 * 800 * 4  # Xvnc still answers the station
    xserver.idle_ms(Screen(*map(str, display_of(daemon, a))), timeout=5)  # and the session's programs
