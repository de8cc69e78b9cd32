"""The web limits' filtering proxy: the limited users' web connections, redirected here by the
kernel (system/webrules.py), are let through to where they were going or refused.

Each limited user has a port of their own (on 127.0.0.1 and ::1), so a connection's port says
whose it is, and so which list applies. For each connection the proxy:

1. reads where it was going (``SO_ORIGINAL_DST``, IPv4 or IPv6); a connection that was not
   redirected (someone dialling the port itself) is closed;
2. reads its first bytes, at most ``sniff.MAX_HELLO`` and for ``SNIFF_SECONDS``, for the
   HTTP ``Host`` or the TLS SNI (core/sniff.py);
3. applies the user's list (core/websites.py), and checks that the name leads to where the
   connection goes (the host's resolver, answers kept ``NAMES_SECONDS``): naming an allowed
   site while dialling another's address (``curl --resolve``, a forged Host or SNI) is refused;
4. allowed, it connects to the original destination, sends what it read and splices the two;
   refused, plain HTTP gets a small page
   ("Blocked by your teacher: SITE", in the server's language) and anything else is reset at
   once (``SO_LINGER`` 0: the client sees the refusal now, it does not hang).

Encrypted Client Hello cannot be refused here: Chromium sends an ECH extension on every
connection (GREASE, made to look like the real one), so the list applies to the outer SNI, and
the browsers' managed policies turn ECH off (docs/web-limits.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from polydesk.core.sniff import MAX_HELLO, MORE, Malformed, Sniffed, sniff
from polydesk.core.websites import WebLimit, WebMode, host_name

log = logging.getLogger(__name__)

SO_ORIGINAL_DST = 80  # linux/netfilter_ipv4.h; IP6T_SO_ORIGINAL_DST is the same number
SNIFF_SECONDS = 3.0
CONNECT_SECONDS = 5.0
MAX_CONNECTIONS = 512  # per user: a flood of connections cannot take the daemon's descriptors
NAMES_SECONDS = 300.0  # a name's addresses, as the resolver gave them, are kept (and added up)
_CHUNK = 64 * 1024


@dataclass
class _User:
    limit: WebLimit
    servers: list[asyncio.Server]
    port: int
    open: set[asyncio.Task[None]] = field(default_factory=set)


class WebProxy:
    """The listeners of the limited users, and the connections through them."""

    def __init__(self, refused_page: Callable[[str], bytes]) -> None:
        self.refused_page = refused_page
        self.users: dict[int, _User] = {}
        self.names: dict[str, tuple[float, set[str]]] = {}  # name -> (until, its addresses)

    def port_of(self, uid: int) -> int | None:
        user = self.users.get(uid)
        return user.port if user else None

    async def serve(self, uid: int, limit: WebLimit) -> int:
        """Filter ``uid``'s connections with ``limit`` from now on; their port."""
        user = self.users.get(uid)
        if user is not None:
            user.limit = limit  # the next connection sees the new list; open ones the rules cut
            return user.port
        servers, port = await _listen(lambda r, w: self._accepted(uid, r, w))
        self.users[uid] = _User(limit, servers, port)
        return port

    async def stop(self, uid: int) -> None:
        user = self.users.pop(uid, None)
        if user is None:
            return
        for server in user.servers:
            server.close()
        for task in list(user.open):
            task.cancel()
        for server in user.servers:
            await server.wait_closed()
        await asyncio.gather(*user.open, return_exceptions=True)

    async def close(self) -> None:
        for uid in list(self.users):
            await self.stop(uid)

    def _accepted(self, uid: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        user = self.users.get(uid)
        if user is None or len(user.open) >= MAX_CONNECTIONS:
            _reset(writer)
            return
        task = asyncio.get_running_loop().create_task(self._handle(user, reader, writer))
        user.open.add(task)
        task.add_done_callback(user.open.discard)

    async def _handle(self, user: _User, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            destination = original_destination(writer.get_extra_info("socket"))
            if destination is None:
                _reset(writer)
                return
            head, seen = await _read_head(reader)
            name = seen.name if seen is not None else None
            if (seen is None and user.limit.mode == WebMode.ALLOW) or not user.limit.permits(name) \
                    or (name is not None and not await self._leads_to(name, destination[0])):
                await self._refuse(reader, writer, seen, name)
                return
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(destination[0], destination[1]), CONNECT_SECONDS)
            except (OSError, TimeoutError):
                _reset(writer)
                return
            upstream = up_writer
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            _reset(writer)
        except Exception:
            log.exception("web limits: a connection of uid %s failed", user)
            _reset(writer)
        finally:
            for end in (writer, upstream):
                if end is not None and not end.is_closing():
                    end.close()

    async def _leads_to(self, name: str, address: str) -> bool:
        """Whether the resolver gives ``address`` for ``name`` (names with no site, as
        ``Host: 192.0.2.1``, are the list's business, not this check's)."""
        site = host_name(name)
        if site is None:
            return True
        loop = asyncio.get_running_loop()
        until, known = self.names.get(site, (0.0, set()))
        if address in known:
            return True
        if loop.time() < until - NAMES_SECONDS + 1.0:
            return False  # asked less than a second ago: do not let a client make us ask in a loop
        try:
            answers = await asyncio.wait_for(loop.getaddrinfo(site, None, type=socket.SOCK_STREAM),
                                             CONNECT_SECONDS)
        except (OSError, TimeoutError):
            answers = []
        fresh = {str(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in answers}
        if len(self.names) > 10000:
            self.names.clear()
        self.names[site] = (loop.time() + NAMES_SECONDS, (known if loop.time() < until else set()) | fresh)
        return address in self.names[site][1]

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      seen: Sniffed | None, name: str | None) -> None:
        if seen is not None and seen.kind == "http":
            writer.write(self.refused_page(name or "?"))
            # A lingering close, as HTTP servers do: the page, our FIN, then what the client still
            # sends is read and dropped until it closes. Closing with unread bytes would send a
            # reset, which can reach the client before it has read the page.
            with contextlib.suppress(ConnectionError, TimeoutError, OSError):
                await asyncio.wait_for(writer.drain(), SNIFF_SECONDS)
                writer.write_eof()
                await asyncio.wait_for(_drain_input(reader), SNIFF_SECONDS)
            writer.close()
            return
        _reset(writer)


async def _listen(handler: Callable[[asyncio.StreamReader, asyncio.StreamWriter], None]
                  ) -> tuple[list[asyncio.Server], int]:
    """Listeners on 127.0.0.1 and ::1 on one free port (the kernel's pick; ::1 only where IPv6 is)."""
    for _ in range(20):
        v4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        v4.bind(("127.0.0.1", 0))
        port = v4.getsockname()[1]
        sockets = [v4]
        if socket.has_ipv6:
            v6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
            v6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                v6.bind(("::1", port))
            except OSError as exc:
                v6.close()
                if exc.errno != 98:  # not "in use": no IPv6 loopback here, IPv4 alone
                    sockets = [v4]
                else:
                    v4.close()
                    continue
            else:
                sockets.append(v6)
        servers = []
        for sock in sockets:
            sock.listen(256)
            servers.append(await asyncio.start_server(
                lambda r, w: handler(r, w), sock=sock, limit=_CHUNK))
        return servers, port
    raise OSError("no port free on both 127.0.0.1 and ::1 for the web limits' proxy")


def original_destination(sock: socket.socket | None) -> tuple[str, int] | None:
    """Where a redirected connection was going (SO_ORIGINAL_DST); None if it was not redirected."""
    if sock is None:
        return None
    address: ipaddress.IPv4Address | ipaddress.IPv6Address
    try:
        if sock.family == socket.AF_INET6:
            raw = sock.getsockopt(socket.IPPROTO_IPV6, SO_ORIGINAL_DST, 28)
            port, address = struct.unpack_from("!H", raw, 2)[0], ipaddress.IPv6Address(raw[8:24])
        else:
            raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
            port, address = struct.unpack_from("!H", raw, 2)[0], ipaddress.IPv4Address(raw[4:8])
    except OSError:
        return None
    if address.is_loopback:
        return None  # loopback is never redirected: this is the proxy's own port, dialled
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    return str(mapped or address), port


async def _read_head(reader: asyncio.StreamReader) -> tuple[bytes, Sniffed | None]:
    """The connection's first bytes and what they name (None: nothing a site can be read from)."""
    head = b""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SNIFF_SECONDS
    while True:
        try:
            answer = sniff(head)
        except Malformed:
            return head, None
        if answer is not MORE:
            assert isinstance(answer, Sniffed)
            return head, answer
        left = deadline - loop.time()
        if left <= 0:
            return head, None
        try:
            chunk = await asyncio.wait_for(reader.read(MAX_HELLO - len(head) or 1), left)
        except TimeoutError:
            return head, None
        if not chunk:
            raise ConnectionResetError("the client left before naming a site")
        head += chunk


async def _drain_input(reader: asyncio.StreamReader) -> None:
    while await reader.read(_CHUNK):
        pass


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while chunk := await source.read(_CHUNK):
            sink.write(chunk)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()
    except (ConnectionError, OSError):
        sink.close()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP reset: the client is told at once that there is nothing here."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.close()
