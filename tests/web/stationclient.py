"""Test helpers for the station bridge: its URL, RFB over its WebSocket, and a TCP relay for VNC
clients that speak only TCP (vncdotool)."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.harness import Daemon
from tests.rfb import RfbClient


def vnc_url(daemon: Daemon, session_id: str, mode: str = "own") -> str:
    return daemon.url.replace("http://", "ws://") + f"/api/v1/sessions/{session_id}/vnc?mode={mode}"


def refusal(daemon: Daemon, session_id: str, headers: dict[str, str], mode: str = "own") -> tuple[int, Any]:
    """The HTTP status (and JSON error) the bridge answers a handshake it refuses with."""
    try:
        with connect(vnc_url(daemon, session_id, mode), additional_headers=headers, open_timeout=10,
                     subprotocols=["binary"]):  # type: ignore[list-item]
            pass
    except InvalidStatus as exc:
        return exc.response.status_code, json.loads(exc.response.body or b"null")
    raise AssertionError("the bridge accepted the station")


class WsSocket:
    """The socket calls RfbClient makes, over the bridge's WebSocket."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.timeout: float | None = 10.0
        self._buffer = b""

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def recv(self, size: int) -> bytes:
        if not self._buffer:
            try:
                message = self.ws.recv(timeout=self.timeout)
            except ConnectionClosed:
                return b""
            assert isinstance(message, bytes), "the bridge sent a text message"
            self._buffer = message
        chunk, self._buffer = self._buffer[:size], self._buffer[size:]
        return chunk

    def sendall(self, data: bytes) -> None:
        self.ws.send(data)

    def close(self) -> None:
        self.ws.close()


@contextlib.contextmanager
def station(daemon: Daemon, session_id: str, headers: dict[str, str],
            mode: str = "own") -> Iterator[RfbClient]:
    """An RFB client attached to a session through the bridge (handshake done)."""
    with connect(vnc_url(daemon, session_id, mode), additional_headers=headers, open_timeout=10,
                 subprotocols=["binary"], max_size=None) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "binary"
        yield RfbClient.over(WsSocket(ws))


@contextlib.contextmanager
def raw_station(daemon: Daemon, session_id: str, headers: dict[str, str],
                mode: str = "own") -> Iterator[ClientConnection]:
    """The bridge's WebSocket with nothing sent yet: the test writes the RFB bytes itself."""
    with connect(vnc_url(daemon, session_id, mode), additional_headers=headers, open_timeout=10,
                 subprotocols=["binary"], max_size=None) as ws:  # type: ignore[list-item]
        yield ws


def closed_with(ws: ClientConnection, timeout: float) -> tuple[int, str] | None:
    """The close code and reason if the bridge hangs up within ``timeout`` (frames are dropped)."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            ws.recv(timeout=left)
    except TimeoutError:
        return None
    except ConnectionClosed as closed:
        return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (1006, "")
    return None


class TcpRelay:
    """127.0.0.1:<free port> <-> the bridge, one WebSocket per TCP connection. Tests only: the
    product never exposes a session over TCP, and this relay authenticates with a token."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self.headers = headers
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.server.getsockname()[1])
        self._closing: list[Any] = [self.server]
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            try:
                ws = connect(self.url, additional_headers=self.headers, open_timeout=10, legacy=True,
                             subprotocols=["binary"], max_size=None)  # type: ignore[list-item]
            except Exception:
                conn.close()
                continue
            self._closing += [conn, ws]
            for target in (self._tcp_to_ws, self._ws_to_tcp):
                thread = threading.Thread(target=target, args=(conn, ws), daemon=True)
                self._threads.append(thread)
                thread.start()

    @staticmethod
    def _tcp_to_ws(conn: socket.socket, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            while data := conn.recv(65536):
                ws.send(data)
        with contextlib.suppress(Exception):
            ws.close()

    @staticmethod
    def _ws_to_tcp(conn: socket.socket, ws: ClientConnection) -> None:
        with contextlib.suppress(Exception):
            for message in ws:
                conn.sendall(message if isinstance(message, bytes) else message.encode())
        with contextlib.suppress(Exception):
            conn.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        for thing in self._closing:
            if isinstance(thing, socket.socket):  # wakes a thread blocked in accept or recv
                with contextlib.suppress(OSError):
                    thing.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):
                thing.close()
        for thread in self._threads:
            thread.join(timeout=5)
