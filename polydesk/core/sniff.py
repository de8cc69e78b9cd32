"""The site a new connection names, read from its first bytes: HTTP's Host or TLS's SNI.

The web-limit proxy (web/weblimit.py) feeds ``sniff`` what a client sent so far; the answer
is ``MORE`` (keep reading, up to ``MAX_HELLO`` bytes), or a ``Sniffed`` with the name (None:
the client named none), or ``Malformed`` when the bytes are neither a TLS ClientHello nor an
HTTP/1 request head. Every length is checked against what is there before it is used: a
hostile client gets ``Malformed``, never an exception of another kind or a read past the end.

A ClientHello with Encrypted Client Hello (extension 0xfe0d) is reported as such: its SNI is
the outer, public name, not the site the browser will talk to.
Pure: imports nothing of the project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

MAX_HELLO = 16 * 1024  # a ClientHello (or an HTTP request head) larger than this is refused
_TLS_HANDSHAKE = 0x16
_CLIENT_HELLO = 0x01
_EXT_SERVER_NAME = 0x0000
_EXT_ECH = 0xFE0D
_HOST_NAME = 0x00
_METHOD = re.compile(rb"^[A-Z]{1,20} \S{1,8000} HTTP/1\.[01]$")


class Malformed(ValueError):
    """Neither a TLS ClientHello nor an HTTP/1 request head (or one of more than MAX_HELLO bytes)."""


@dataclass(frozen=True)
class Sniffed:
    kind: Literal["tls", "http"]
    name: str | None  # the SNI host name or the Host header's value; None: none given
    ech: bool = False  # an Encrypted Client Hello: the real name is hidden


class _More:
    def __repr__(self) -> str:
        return "MORE"


MORE: Final = _More()


def sniff(data: bytes) -> Sniffed | _More:
    """What ``data``, a connection's first bytes, names (see the module's text)."""
    if not data:
        return MORE
    if data[0] == _TLS_HANDSHAKE:
        return _tls(data)
    return _http(data)


def _tls(data: bytes) -> Sniffed | _More:
    # Records of type handshake, their payloads joined: a ClientHello may span several.
    handshake = bytearray()
    at = 0
    while True:
        if len(data) - at < 5:
            break
        kind, major, length = data[at], data[at + 1], int.from_bytes(data[at + 3:at + 5], "big")
        if kind != _TLS_HANDSHAKE or major != 3 or length == 0 or length > 16384 + 2048:
            raise Malformed("not a TLS handshake record")
        if len(data) - at - 5 < length:
            handshake += data[at + 5:]
            break
        handshake += data[at + 5:at + 5 + length]
        at += 5 + length
        if len(handshake) >= 4 and len(handshake) >= 4 + int.from_bytes(handshake[1:4], "big"):
            break
    if len(handshake) >= 4:
        if handshake[0] != _CLIENT_HELLO:
            raise Malformed("the first handshake message is not a ClientHello")
        size = int.from_bytes(handshake[1:4], "big")
        if size + 4 > MAX_HELLO:
            raise Malformed("ClientHello larger than the cap")
        if len(handshake) >= 4 + size:
            return _client_hello(bytes(handshake[4:4 + size]))
    if len(data) >= MAX_HELLO:
        raise Malformed("no complete ClientHello within the cap")
    return MORE


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.at + count > len(self.data):
            raise Malformed("a length runs past the end of the ClientHello")
        chunk = self.data[self.at:self.at + count]
        self.at += count
        return chunk

    def number(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, size: int) -> bytes:
        return self.take(self.number(size))

    @property
    def left(self) -> int:
        return len(self.data) - self.at


def _client_hello(body: bytes) -> Sniffed:
    hello = _Reader(body)
    hello.take(2 + 32)  # version, random
    hello.vector(1)  # session id
    hello.vector(2)  # cipher suites
    hello.vector(1)  # compression methods
    if hello.left == 0:
        return Sniffed("tls", None)  # no extensions at all
    extensions = _Reader(hello.vector(2))
    if hello.left:
        raise Malformed("bytes after the ClientHello's extensions")
    name: str | None = None
    ech = False
    seen: set[int] = set()
    while extensions.left:
        kind = extensions.number(2)
        payload = extensions.vector(2)
        if kind in seen:
            raise Malformed(f"extension {kind:#06x} twice")  # as RFC 8446 says: two SNIs, two answers
        seen.add(kind)
        if kind == _EXT_ECH:
            ech = True
        elif kind == _EXT_SERVER_NAME:
            name = _server_name(payload)
    return Sniffed("tls", name, ech)


def _server_name(payload: bytes) -> str:
    names = _Reader(payload)
    listing = _Reader(names.vector(2))
    if names.left:
        raise Malformed("bytes after the server name list")
    found: str | None = None
    while listing.left:
        kind = listing.number(1)
        value = listing.vector(2)
        if kind == _HOST_NAME:
            if found is not None:
                raise Malformed("two host names in one server name list")
            found = _ascii_name(value)
    if found is None:
        raise Malformed("a server name list without a host name")
    return found


def _ascii_name(value: bytes) -> str:
    if not value or len(value) > 255 or not all(0x21 <= b < 0x7F for b in value):
        raise Malformed("a host name that is not printable ASCII")
    return value.decode("ascii")


def _http(data: bytes) -> Sniffed | _More:
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) >= MAX_HELLO:
            raise Malformed("no end of the request head within the cap")
        first = data.split(b"\r\n", 1)[0]
        if not re.match(rb"^[A-Z]{0,20}( |$)", first[:21]):
            raise Malformed("not an HTTP request")
        return MORE
    if end + 4 > MAX_HELLO:
        raise Malformed("request head larger than the cap")
    lines = data[:end].split(b"\r\n")
    if not _METHOD.match(lines[0]):
        raise Malformed("not an HTTP/1 request line")
    target = lines[0].split(b" ")[1]
    hosts = []
    for line in lines[1:]:
        field, colon, value = line.partition(b":")
        if not colon or not field or field != field.strip() or field[:1] in b" \t":
            raise Malformed("a header line without a name")  # obsolete folding included
        if field.lower() == b"host":
            hosts.append(value.strip())
    if len(hosts) > 1:
        raise Malformed("two Host headers")  # which one would the server believe?
    absolute = re.match(rb"^[a-zA-Z][a-zA-Z0-9+.-]*://([^/?#@]*@)?([^/?#]*)", target)
    if absolute:  # the absolute form: the server takes its name over Host's (RFC 9112 3.2.2)
        return Sniffed("http", _ascii_name(absolute.group(2)))
    if not hosts or not hosts[0]:
        return Sniffed("http", None)
    return Sniffed("http", _ascii_name(hosts[0]))
