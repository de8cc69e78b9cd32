"""How many connections each listener keeps, and how long a client may take to send a request.

Uvicorn closes an idle keep-alive connection, but never one that is still sending its
request: 3,000 half-sent requests ("slow-loris") stayed open until the daemon ran out of
file descriptors, and then the CLI's Unix socket could not accept either. So:

- every request, headers and body, must arrive within ``request_timeout`` seconds of its
  first byte (or of the connection, for a client that sends nothing); a slower one is closed;
- the TCP listener keeps at most ``max_connections`` connections, and never more than half
  the daemon's file-descriptor limit (read at each connection, so a lowered limit counts);
- on the Unix socket, each local user other than root keeps at most ``UNIX_PER_USER``
  connections and all of them together at most a quarter of the limit: whatever the TCP
  side or one local user does, root's CLI and the sessions still have descriptors.

A connection over its cap gets a short 503 and is closed before anything is read.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable, Hashable

log = logging.getLogger(__name__)

UNIX_PER_USER = 32  # a CLI uses one connection per command; a few more for waiting on events
TCP_SHARE = 0.5  # of RLIMIT_NOFILE
UNIX_SHARE = 0.25
_BUSY = b"too many connections to polydesk: try again soon"
REFUSAL = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
           b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY), _BUSY))


def fd_share(share: float) -> int:
    """``share`` of this process's current soft limit of open files."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return max(4, int(soft * share))


class Caps:
    """Open transports per key, each key with its cap; closed ones are swept when a cap is reached."""

    def __init__(self) -> None:
        self._open: dict[Hashable, set[asyncio.BaseTransport]] = {}

    def count(self, key: Hashable) -> int:
        transports = self._open.get(key)
        if not transports:
            return 0
        transports -= {t for t in transports if t.is_closing()}
        if not transports:
            del self._open[key]
        return len(transports)

    def admit(self, transport: asyncio.BaseTransport, limits: list[tuple[Hashable, int]]) -> bool:
        """Count ``transport`` under every key of ``limits`` unless one of them is full."""
        for key, cap in limits:
            if len(self._open.get(key, ())) >= cap and self.count(key) >= cap:
                return False
        for key, _ in limits:
            self._open.setdefault(key, set()).add(transport)
        return True


class ConnectionGuard:
    """One listener's rules: which caps a new connection counts against, and the request timeout."""

    def __init__(self, name: str, request_timeout: float,
                 limits: Callable[[asyncio.BaseTransport], list[tuple[Hashable, int]]]) -> None:
        self.name = name
        self.request_timeout = request_timeout
        self._limits = limits
        self._caps = Caps()

    def admit(self, transport: asyncio.BaseTransport) -> bool:
        if self._caps.admit(transport, self._limits(transport)):
            return True
        log.warning("%s: too many connections; refusing new ones until some close", self.name)
        return False


def tcp_guard(request_timeout: float, max_connections: int) -> ConnectionGuard:
    return ConnectionGuard("web listener", request_timeout,
                           lambda _: [("all", min(max_connections, fd_share(TCP_SHARE)))])


def unix_guard(request_timeout: float, peer_uid: Callable[[asyncio.BaseTransport], int | None]
               ) -> ConnectionGuard:
    def limits(transport: asyncio.BaseTransport) -> list[tuple[Hashable, int]]:
        uid = peer_uid(transport)
        if uid == 0:
            return []  # root's CLI is how the host is rescued: never refused here
        return [("users", fd_share(UNIX_SHARE)), (("uid", uid), UNIX_PER_USER)]

    return ConnectionGuard("API socket", request_timeout, limits)
