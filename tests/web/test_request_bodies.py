"""Bodies before authentication, against a real daemon (issue 13, point 7): an anonymous huge
POST is refused before it is read, the daemon's memory does not grow, an anonymous request's
JSON is never parsed, and a signed-in caller's body is capped with a clear 413."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import psutil
import pytest

from tests.harness import Daemon
from tests.web.webclient import socket_client

MIB = 1 << 20
HUGE = 400 * MIB


class PeakRss:
    """The daemon's largest resident size while the block runs, sampled every 20 ms."""

    def __init__(self, daemon: Daemon) -> None:
        assert daemon.proc is not None
        self.proc = psutil.Process(daemon.proc.pid)
        self.before = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        time.sleep(0.3)  # a body still being taken in shows in the next samples
        self._stop.set()
        self._thread.join()

    @property
    def grown_mib(self) -> float:
        return (self.peak - self.before) / MIB


def post_raw(sock: socket.socket, head: bytes, body_size: int, chunked: bool = False
             ) -> tuple[int, bytes, float]:
    """Send ``head`` then up to ``body_size`` bytes of body as fast as the daemon takes them;
    stop when it answers or hangs up. The status, the answer and how long it took."""
    started = time.monotonic()
    sock.settimeout(30)
    sock.sendall(head)
    chunk = b"x" * MIB
    piece = (b"%x\r\n" % len(chunk)) + chunk + b"\r\n" if chunked else chunk
    pending = memoryview(b"")
    sent = 0
    sock.setblocking(False)
    answer = b""
    while sent < body_size or pending:
        try:
            answer += sock.recv(65536)
            break  # the daemon answered before the body was sent: stop sending
        except BlockingIOError:
            pass
        if not pending:
            pending, sent = memoryview(piece), sent + len(chunk)
        try:
            pending = pending[sock.send(pending):]
        except BlockingIOError:
            time.sleep(0.001)
        except (BrokenPipeError, ConnectionResetError):
            break
    sock.settimeout(30)
    try:
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            more = sock.recv(65536)
            if not more:
                break
            answer += more
    except (ConnectionResetError, TimeoutError):
        pass
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    return status, answer, time.monotonic() - started


def head(path: str, length: int | None, kind: str = "application/json") -> bytes:
    size = f"Content-Length: {length}\r\n" if length is not None else "Transfer-Encoding: chunked\r\n"
    return f"POST {path} HTTP/1.1\r\nHost: polydesk\r\nContent-Type: {kind}\r\n{size}\r\n".encode()


def tcp(daemon: Daemon) -> socket.socket:
    return socket.create_connection(("127.0.0.1", daemon.port))


def test_an_anonymous_huge_post_is_refused_before_it_is_read(fake_daemon: Daemon) -> None:
    for length in (HUGE, None):  # declared, and chunked (no length given)
        with PeakRss(fake_daemon) as rss:
            status, answer, took = post_raw(tcp(fake_daemon), head("/api/v1/sessions/logoff", length), HUGE,
                                            chunked=length is None)
        assert rss.grown_mib < 30, f"the daemon grew {rss.grown_mib:.0f} MiB on an anonymous body"
        assert took < 5, f"the refusal took {took:.1f} s"
        assert status == 401, answer[:300]
        assert b'"not-signed-in"' in answer


def test_an_anonymous_request_never_has_its_json_parsed(fake_daemon: Daemon) -> None:
    for body in (b"{not json", b'{"ids": 5}', b"[]"):
        answer = httpx.post(fake_daemon.url + "/api/v1/sessions/block", content=body,
                            headers={"Content-Type": "application/json"}, timeout=10)
        assert answer.status_code == 401, (body, answer.text)
        assert answer.json()["error"]["code"] == "not-signed-in"
    bad_token = httpx.post(fake_daemon.url + "/api/v1/sessions/block", content=b"{not json",
                           headers={"Authorization": "Bearer nope"}, timeout=10)
    assert bad_token.status_code == 401


def test_the_log_on_form_takes_only_a_small_anonymous_body(fake_daemon: Daemon) -> None:
    with PeakRss(fake_daemon) as rss:
        status, answer, took = post_raw(
            tcp(fake_daemon), head("/signin", HUGE, "application/x-www-form-urlencoded"), HUGE)
    assert status == 413 and b"too large" in answer, answer[:300]
    assert took < 5 and rss.grown_mib < 30


@pytest.mark.parametrize("chunked", [False, True])
def test_a_signed_in_callers_body_is_capped_with_a_clear_413(fake_daemon: Daemon, chunked: bool) -> None:
    def unix() -> socket.socket:
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(fake_daemon.socket))
        return sock

    with PeakRss(fake_daemon) as rss:
        status, answer, took = post_raw(unix(), head("/api/v1/sessions/block", None if chunked else HUGE),
                                        64 * MIB, chunked=chunked)
    assert status == 413, answer[:300]
    assert b'"too-large"' in answer and b"max_request_body" in answer
    assert took < 5 and rss.grown_mib < 30
    # a body under the cap is read as before: a malformed one from a known caller is a 400
    with socket_client(fake_daemon) as root:
        answer = root.post("/api/v1/sessions/block", content=b"{not json",
                           headers={"Content-Type": "application/json"})
        assert answer.status_code == 400
