"""Serving the ASGI app on TCP and on the Unix socket, with the peer's credentials.

Uvicorn does not put SO_PEERCRED into the ASGI scope, so the protocol class
below reads it when a connection is made and wraps the app for that
connection: ``scope["polydesk.peer"] = (pid, uid, gid)``. Nothing a client
sends can set it.

Each listener is its own server with its own connection caps and request timeout
(connguard.py), so a flood of the TCP side cannot starve the CLI's Unix socket.
Proxy headers (X-Forwarded-For, -Proto) are believed only from ``trusted_proxies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Generator
from pathlib import Path
from typing import Any, cast

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from polydesk.config.settings import Settings
from polydesk.web.connguard import REFUSAL, ConnectionGuard, tcp_guard, unix_guard

PEER_KEY = "polydesk.peer"
_PEERCRED = struct.Struct("3i")
UNIX_BACKLOG = 128


class _WithPeer:
    def __init__(self, app: Any, peer: tuple[int, int, int]) -> None:
        self.app = app
        self.peer = peer

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope[PEER_KEY] = self.peer
        await self.app(scope, receive, send)


def _peer(transport: asyncio.BaseTransport) -> tuple[int, int, int] | None:
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    pid, uid, gid = _PEERCRED.unpack(raw)
    return pid, uid, gid


class _Config(uvicorn.Config):
    """A server's configuration, with its listener's connection rules."""

    guard: ConnectionGuard


class GuardedProtocol(H11Protocol):
    """HTTP/1.1 with the listener's caps, and a deadline for each request to arrive in full."""

    _deadline: asyncio.TimerHandle | None = None

    @property
    def guard(self) -> ConnectionGuard:
        return cast(_Config, self.config).guard

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(transport):
            transport.write(REFUSAL)
            transport.close()
            return
        self._arm()  # a client that connects and sends nothing is a half-sent request too

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm()  # the first byte of a request starts its clock; later bytes do not reset it
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the whole request is in (or the connection is done or switching)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()
        super().handle_websocket_upgrade(event)

    def _arm(self) -> None:
        if self._deadline is None:
            self._deadline = self.loop.call_later(self.guard.request_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


class PeerCredProtocol(GuardedProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = _peer(transport)
        if peer is not None:
            self.app = _WithPeer(self.app, peer)
        super().connection_made(transport)


class PeerCredWebSocketProtocol(WebSocketsSansIOProtocol):
    """The same for WebSockets: after the upgrade uvicorn hands the connection to a new protocol."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = _peer(transport)
        if peer is not None:
            self.app = _WithPeer(self.app, peer)


class _Server(uvicorn.Server):
    """Signals are the daemon's business, not each server's."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def unix_socket(path: Path) -> socket.socket:
    """A listening socket every local user may connect to (the API tells them apart)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o666)
    sock.listen(UNIX_BACKLOG)
    return sock


def _peer_uid(transport: asyncio.BaseTransport) -> int | None:
    peer = _peer(transport)
    return None if peer is None else peer[1]


def make_servers(app: Any, settings: Settings) -> list[uvicorn.Server]:
    """The Unix socket's server first, then the TCP listener's (if ``listen`` is set)."""
    # No permessage-deflate: what the WebSockets carry is compressed already (the stations' RFB in
    # Tight or ZRLE, projections and pictures in JPEG); deflating it again costs CPU for nothing.
    common: dict[str, Any] = {"log_level": "warning", "lifespan": "off", "ws_per_message_deflate": False}
    unix = _Config(app, uds=str(settings.api_socket), http=PeerCredProtocol, ws=PeerCredWebSocketProtocol,
                   proxy_headers=False, backlog=UNIX_BACKLOG, **common)
    unix.guard = unix_guard(settings.request_timeout, _peer_uid)
    servers: list[uvicorn.Server] = [_Server(unix)]
    if settings.listen:
        host, _, port = settings.listen.rpartition(":")
        proxies = list(settings.trusted_proxies)
        tcp = _Config(app, host=host.strip("[]"), port=int(port), http=GuardedProtocol,
                      ws="websockets-sansio", proxy_headers=bool(proxies),
                      forwarded_allow_ips=proxies or None, **common)
        tcp.guard = tcp_guard(settings.request_timeout, settings.max_connections)
        servers.append(_Server(tcp))
    return servers


async def serve(servers: list[uvicorn.Server], api_socket: Path, stop: asyncio.Event) -> None:
    sock = unix_socket(api_socket)
    tasks = [asyncio.create_task(servers[0].serve(sockets=[sock]))]
    tasks += [asyncio.create_task(server.serve()) for server in servers[1:]]
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([*tasks, stopped], return_when=asyncio.FIRST_COMPLETED)
    for server in servers:
        server.should_exit = True
    await asyncio.gather(*tasks, return_exceptions=True)
    stopped.cancel()
    with contextlib.suppress(FileNotFoundError):
        api_socket.unlink()
    for task in done:
        if task is not stopped and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]
