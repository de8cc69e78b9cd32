"""Slow-loris against a real daemon: many half-sent requests on the web port, and on the API
socket from another local user. They are closed after ``request_timeout``, the CLI answers
meanwhile, and the log stays small (issue 13, point 6)."""

from __future__ import annotations

import contextlib
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable

import httpx
import psutil

from tests.harness import Daemon
from tests.users import TestUser

FD_LIMIT = 256  # the daemon's open-file limit for the attack: low, so that a bounded test reaches it
TIMEOUT_S = 3.0
HALF_REQUEST = b"GET /api/v1/sessions HTTP/1.1\r\nHost: polydesk\r\nX-Slow: "


def lower_fd_limit(daemon: Daemon) -> psutil.Process:
    assert daemon.proc is not None
    proc = psutil.Process(daemon.proc.pid)
    proc.rlimit(psutil.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))
    return proc


def half_sent(address: tuple[str, int], count: int) -> list[socket.socket]:
    """``count`` connections that each send the start of a request and never the rest."""
    made = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=5)
        with contextlib.suppress(OSError):  # refused at once (over the cap): counts as closed below
            sock.sendall(HALF_REQUEST)
        made.append(sock)
    return made


def wait_until_closed(socks: list[socket.socket], within: float) -> list[socket.socket]:
    """The sockets the daemon has not closed after ``within`` seconds."""
    selector = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    open_ = set(socks)
    deadline = time.monotonic() + within
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            try:
                data = sock.recv(4096)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data or data.startswith(b"HTTP/1.1 503"):
                selector.unregister(sock)
                open_.discard(sock)
    selector.close()
    return list(open_)


def api_answers(daemon: Daemon, within: float) -> float:
    """How long root's API call over the Unix socket took (the CLI's way in)."""
    started = time.monotonic()
    with httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon.socket)), base_url="http://polydesk",
                      timeout=within) as client:
        assert client.get("/api/v1/sessions").status_code == 200
    return time.monotonic() - started


def test_half_sent_requests_on_the_web_port_are_closed_and_the_cli_answers(
        daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory(f"request_timeout = {TIMEOUT_S}", backends='["fake"]')
    proc = lower_fd_limit(daemon)
    fds_before = proc.num_fds()
    log_before = daemon.log.stat().st_size
    socks = half_sent(("127.0.0.1", daemon.port), 3 * FD_LIMIT)
    try:
        started = time.monotonic()
        assert api_answers(daemon, within=15) < 5, "the API socket was slow while the web port was flooded"
        cli = daemon.cli("sessions", timeout=30)
        assert cli.returncode == 0, cli.stderr
        assert time.monotonic() - started < TIMEOUT_S + 10
        left = wait_until_closed(socks, within=TIMEOUT_S + 5)
        assert not left, f"{len(left)} half-sent requests still open {TIMEOUT_S + 5:.0f} s later"
        assert proc.num_fds() <= fds_before + 8
    finally:
        for sock in socks:
            sock.close()
    grown = daemon.log.stat().st_size - log_before
    assert grown < 64 * 1024, f"the log grew {grown} bytes: {daemon.log.read_text()[-2000:]}"
    # and the web port serves again
    assert httpx.get(daemon.url + "/signin", timeout=10).status_code == 200


SOCKET_ATTACKER = """
import socket, sys, time
socks = []
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(sys.argv[1])
        s.sendall(b"GET /api/v1/sessions HTTP/1.1\\r\\nHost: x\\r\\n")
    except OSError:
        pass
    socks.append(s)
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_local_user_cannot_fill_the_api_socket(daemon_factory: Callable[..., Daemon],
                                                  make_user: Callable[..., TestUser]) -> None:
    # request_timeout is long here: the caps, not the timeout, must keep the socket usable
    daemon = daemon_factory("request_timeout = 60.0", backends='["fake"]')
    lower_fd_limit(daemon)
    mallory, ana = make_user("mal"), make_user("ana")
    argv = [sys.executable, "-c", SOCKET_ATTACKER, str(daemon.socket), str(FD_LIMIT + 50)]
    attacker = subprocess.Popen(argv, user=mallory.uid, group=mallory.gid, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True, cwd="/")
    try:
        assert attacker.stdout is not None and attacker.stdout.readline().strip() == "ready"
        assert api_answers(daemon, within=15) < 5  # root
        started = time.monotonic()
        own = daemon.cli("sessions", user=ana, timeout=30)  # another local user
        assert own.returncode == 0, own.stderr
        assert time.monotonic() - started < 10
    finally:
        attacker.communicate("", timeout=30)
