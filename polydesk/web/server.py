"""Serving the ASGI app on TCP and on the Unix socket, with the peer's credentials.

Uvicorn does not put SO_PEERCRED into the ASGI scope, so the protocol class
below reads it when a connection is made and wraps the app for that
connection: ``scope["polydesk.peer"] = (pid, uid, gid)``. Nothing a client
sends can set it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from collections.abc import Generator
from pathlib import Path
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

PEER_KEY = "polydesk.peer"
_PEERCRED = struct.Struct("3i")


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


class PeerCredProtocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        peer = _peer(transport)
        if peer is not None:
            self.app = _WithPeer(self.app, peer)


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
    sock.listen(128)
    return sock


def make_servers(app: Any, listen: str, api_socket: Path) -> list[uvicorn.Server]:
    host, _, port = listen.rpartition(":")
    common: dict[str, Any] = {"log_level": "warning", "lifespan": "off"}
    unix = uvicorn.Config(app, uds=str(api_socket), http=PeerCredProtocol, ws=PeerCredWebSocketProtocol,
                          **common)
    servers: list[uvicorn.Server] = [_Server(unix)]
    if listen:
        servers.append(_Server(uvicorn.Config(app, host=host.strip("[]"), port=int(port),
                                              http="h11", ws="websockets-sansio", **common)))
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
