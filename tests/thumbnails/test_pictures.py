"""Pictures pushed over the events socket (``?pictures=``), from real Xvnc sessions: the whole
picture first, then only the part that changed; what a Dashboard draws from them is the
thumbnail itself; the client chooses the size and the cards it shows; bad requests are named."""

from __future__ import annotations

import contextlib
import io
import json
import struct
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, unix_connect
from websockets.sync.client import connect as tcp_connect

from tests.harness import Daemon
from tests.screens import fill
from tests.thumbnails.test_thumbnails_xvnc import set_background
from tests.users import TestUser
from tests.web.webclient import COOKIE, logon, signin, socket_client


@dataclass
class Canvas:
    """A Dashboard's pictures: every part drawn where the daemon says, as dashboard.js does."""

    pictures: dict[str, Image.Image] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)
    parts: list[tuple[str, tuple[int, int, int, int], tuple[int, int]]] = field(default_factory=list)

    def draw(self, raw: bytes) -> str:
        (length,) = struct.unpack_from(">H", raw)
        head = json.loads(raw[2:2 + length])
        part = Image.open(io.BytesIO(raw[2 + length:])).convert("RGB")
        session_id, size, (x, y) = head["session_id"], tuple(head["thumbnail"]), head["at"]
        if session_id not in self.pictures or self.pictures[session_id].size != size:
            assert (x, y) == (0, 0) and part.size == size, "a first picture comes whole"
            self.pictures[session_id] = Image.new("RGB", size)
        self.pictures[session_id].paste(part, (x, y))
        self.versions[session_id] = head["version"]
        self.parts.append((session_id, (x, y, x + part.width, y + part.height), size))
        return str(session_id)


def receive(ws: ClientConnection, canvas: Canvas, seconds: float, until: Callable[[], bool] | None = None
            ) -> list[str]:
    """Pictures for ``seconds`` (or until ``until()``): the sessions they were of, in order."""
    got: list[str] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0 and not (until and until()):
        try:
            message = ws.recv(timeout=left)
        except TimeoutError:
            break
        if isinstance(message, bytes):
            got.append(canvas.draw(message))
    return got


def quiet(ws: ClientConnection, canvas: Canvas, limit: float = 20) -> None:
    """Until no picture came for 2 s: the desktop finished drawing."""
    deadline = time.monotonic() + limit
    while receive(ws, canvas, 2):
        assert time.monotonic() < deadline, "the screen never kept still"


@contextlib.contextmanager
def connect(daemon: Daemon, query: str) -> Iterator[ClientConnection]:
    """The events socket with ``query``, past its snapshot."""
    url = f"ws://polydesk/api/v1/events?thumbnails=true&{query}"
    with unix_connect(str(daemon.socket), url, open_timeout=10, max_size=2**22) as ws:
        assert json.loads(ws.recv(timeout=10))["kind"] == "snapshot"
        yield ws


@contextlib.contextmanager
def connect_url(url: str, headers: dict[str, str]) -> Iterator[ClientConnection]:
    """The events socket over TCP, as a browser with ``headers``, past its snapshot."""
    with tcp_connect(url, additional_headers=headers, open_timeout=10, max_size=2**22) as ws:
        assert json.loads(ws.recv(timeout=10))["kind"] == "snapshot"
        yield ws


def thumbnail(client: httpx.Client, session_id: str, size: str) -> tuple[Image.Image, int]:
    answer = client.get(f"/api/v1/sessions/{session_id}/thumbnail", params={"size": size})
    assert answer.status_code == 200, answer.text
    return (Image.open(io.BytesIO(answer.content)).convert("RGB"),
            int(answer.headers["x-thumbnail-version"]))


def test_whole_picture_first_then_only_the_part_that_changed_and_the_sum_is_the_thumbnail(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    a = logon(daemon, make_user("ana"))
    canvas = Canvas()
    with socket_client(daemon) as root, connect(daemon, "pictures=large") as ws:
        display = root.get(f"/api/v1/sessions/{a}").json()["display"]
        set_background(daemon, a, display, "#204080")
        quiet(ws, canvas)
        assert canvas.parts[0] == (a, (0, 0, 480, 300), (480, 300))  # whole, at the large size
        drawn = len(canvas.parts)

        # a 64x40 square on a 1280x800 screen, beside the xterm in its middle: 24x15 thumbnail pixels
        fill(daemon, a, display, (96, 96, 160, 136), 0xF0F020)
        assert receive(ws, canvas, 10, until=lambda: len(canvas.parts) > drawn)
        _, (x0, y0, x1, y1), _ = canvas.parts[drawn]
        assert x0 <= 36 and y0 <= 36 and x1 >= 60 and y1 >= 51  # it holds the square ...
        assert (x1 - x0) * (y1 - y0) <= 64 * 48, canvas.parts[drawn]  # ... and little more
        assert x0 % 16 == 0 and y0 % 16 == 0  # on JPEG's block grid: no seams
        r, g, b = canvas.pictures[a].getpixel((48, 44))  # type: ignore[misc]
        assert r > 200 and g > 200 and b < 90, (r, g, b)

        # what the Dashboard drew is the thumbnail: the same version, the same pixels within JPEG's noise
        for _ in range(20):
            quiet(ws, canvas)
            image, version = thumbnail(root, a, "large")
            if version == canvas.versions[a]:
                break
        assert version == canvas.versions[a]
        difference = ImageStat.Stat(ImageChops.difference(image, canvas.pictures[a])).mean
        assert max(difference) < 2.0, difference


def test_the_client_chooses_the_size_and_the_sessions_it_shows(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    a, b = (logon(daemon, make_user(name)) for name in ("ana", "bia"))
    canvas = Canvas()
    with socket_client(daemon) as root, connect(daemon, "pictures=small") as ws:
        displays = {s: root.get(f"/api/v1/sessions/{s}").json()["display"] for s in (a, b)}
        quiet(ws, canvas)
        assert {canvas.pictures[s].size for s in (a, b)} == {(160, 100)}

        ws.send(json.dumps({"kind": "pictures", "size": "medium", "sessions": [a]}))
        assert receive(ws, canvas, 10, until=lambda: canvas.pictures[a].width == 320)
        assert canvas.parts[-1] == (a, (0, 0, 320, 200), (320, 200))  # whole, at the new size
        set_background(daemon, b, displays[b], "#c02020")
        set_background(daemon, a, displays[a], "#20c020")
        assert b not in receive(ws, canvas, 4)  # b is not shown: nothing of it is sent
        assert canvas.pictures[b].width == 160

        ws.send(json.dumps({"kind": "pictures", "size": "medium", "sessions": None}))
        assert b in receive(ws, canvas, 10, until=lambda: canvas.pictures[b].width == 320)
        r, g, bl = (int(v) for v in ImageStat.Stat(canvas.pictures[b]).median)
        assert r > 150 and g < 80 and bl < 80, (r, g, bl)  # the change made while it was hidden


def test_a_standard_user_gets_pictures_of_their_own_session_only_whatever_they_ask(
    daemon: Daemon, make_user: Callable[..., TestUser]
) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    a, b = logon(daemon, ana), logon(daemon, bia)
    canvas = Canvas()
    url = daemon.url.replace("http://", "ws://") + "/api/v1/events?thumbnails=true&pictures=small"
    with signin(daemon, ana) as web, connect_url(url, {"Cookie": f"{COOKIE}={web.cookies[COOKIE]}",
                                                      "Origin": daemon.url}) as ws:
        ws.send(json.dumps({"kind": "pictures", "size": "medium", "sessions": [a, b]}))
        with socket_client(daemon) as root:
            set_background(daemon, b, root.get(f"/api/v1/sessions/{b}").json()["display"], "#c02020")
        got = receive(ws, canvas, 4)
    assert got and set(got) == {a}


@pytest.mark.parametrize("message, reason", [
    ("hello", "the only message a client may send"),
    ('{"kind": "pictures", "size": "huge"}', "unknown thumbnail size 'huge'"),
    ('{"kind": "pictures", "sessions": "1"}', '"sessions" must be a list'),
])
def test_a_bad_client_message_closes_the_socket_naming_the_problem(
    fake_daemon: Daemon, message: str, reason: str
) -> None:
    with connect(fake_daemon, "pictures=medium") as ws:
        ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(100):
                ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1007 and reason in closed.value.rcvd.reason


def test_an_unknown_picture_size_is_refused_by_name(fake_daemon: Daemon) -> None:
    url = "ws://polydesk/api/v1/events?thumbnails=true&pictures=huge"
    with unix_connect(str(fake_daemon.socket), url, open_timeout=10) as ws, \
            pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008 and "'huge'" in closed.value.rcvd.reason


def test_a_page_is_held_to_its_share_of_the_network_and_still_ends_on_the_newest_pictures(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory(extra_config="dashboard_picture_kbps = 4")  # 500 bytes a second
    sessions = [logon(daemon, make_user(name)) for name in ("ana", "bia")]
    canvas = Canvas()
    with socket_client(daemon) as root, connect(daemon, "pictures=large") as ws:
        displays = {s: root.get(f"/api/v1/sessions/{s}").json()["display"] for s in sessions}
        quiet(ws, canvas)
        colors = ["#c02020", "#20c020", "#2020c0", "#c0c020", "#20c0c0", "#c020c0"]
        sizes: list[int] = []  # of every picture message received meanwhile
        started = time.monotonic()
        for step in range(12):  # both screens change whole every 0.5 s, for 6 s
            for session_id in sessions:
                set_background(daemon, session_id, displays[session_id], colors[step % len(colors)])
            deadline = started + (step + 1) * 0.5
            while (left := deadline - time.monotonic()) > 0:
                with contextlib.suppress(TimeoutError):
                    message = ws.recv(timeout=left)
                    if isinstance(message, bytes):
                        canvas.draw(message)
                        sizes.append(len(message))
        took = time.monotonic() - started
        # the rate, the bucket's second's worth, and one batch that overdraws it (a picture a session)
        assert len(sizes) >= 2 and sum(sizes) <= 500 * took + 500 + 2 * max(sizes), sizes

        def last_colour_shown() -> bool:  # #c020c0 on every card
            medians = [ImageStat.Stat(canvas.pictures[s]).median for s in sessions]
            return all(r > 150 and g < 80 and b > 150 for r, g, b in medians)

        # what was held back is not lost: each card ends on its screen, within the budget's pace
        receive(ws, canvas, 40, until=last_colour_shown)
        assert last_colour_shown(), [ImageStat.Stat(canvas.pictures[s]).median for s in sessions]
