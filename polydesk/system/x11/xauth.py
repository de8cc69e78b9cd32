"""X cookies: the MIT-MAGIC-COOKIE-1 that opens a session's display, and its Xauthority file."""

from __future__ import annotations

import os
import re
import secrets
import socket
import struct
from pathlib import Path

COOKIE_NAME = b"MIT-MAGIC-COOKIE-1"
_FAMILY_LOCAL = 256
_FAMILY_WILD = 0xFFFF


class X11Error(Exception):
    """The X server or an X tool did not do what was asked."""


def display_number(display: str) -> int:
    match = re.fullmatch(r":(\d+)(?:\.\d+)?", display)
    if not match:
        raise ValueError(f"not a local display name: {display!r}")
    return int(match.group(1))


def new_cookie() -> bytes:
    return secrets.token_bytes(16)


def xauthority_bytes(display_number: int, cookie: bytes) -> bytes:
    """An Xauthority file in the binary format libXau reads.

    Two entries: FamilyWild matches any host name (the machine may be renamed while a
    session runs); FamilyLocal + host name is what python-xlib looks for.
    """
    number = str(display_number).encode()
    hostname = socket.gethostname().encode()
    return b"".join(
        _xauth_entry(family, address, number, COOKIE_NAME, cookie)
        for family, address in ((_FAMILY_WILD, b""), (_FAMILY_LOCAL, hostname))
    )


def _xauth_entry(family: int, *fields: bytes) -> bytes:
    return struct.pack(">H", family) + b"".join(struct.pack(">H", len(f)) + f for f in fields)


def write_xauthority(path: Path, display_number: int, cookie: bytes, uid: int, gid: int) -> None:
    """Create ``path`` (it must not exist) as ``uid``'s, mode 0600, holding the cookie."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, uid, gid)
        os.write(fd, xauthority_bytes(display_number, cookie))
    finally:
        os.close(fd)


def read_cookie(path: Path) -> bytes:
    """The first MIT-MAGIC-COOKIE-1 in an Xauthority file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        raw = file.read(65536)
    cookie = cookie_in(raw)
    if cookie is None:
        raise X11Error(f"no {COOKIE_NAME.decode()} in {path}")
    return cookie


def cookie_in(raw: bytes, number: int | None = None) -> bytes | None:
    """The MIT-MAGIC-COOKIE-1 in an Xauthority file's bytes: the first one, or with ``number``
    the first for that display (or for any display). None where there is none, or where the
    file is cut short before it: the user owns the file and may have mangled it."""
    offset, wanted = 0, None if number is None else str(number).encode()
    while offset + 2 <= len(raw):
        offset += 2  # family
        fields = []
        for _ in range(4):
            length = int.from_bytes(raw[offset:offset + 2], "big")
            if offset + 2 + length > len(raw):
                return None
            fields.append(raw[offset + 2:offset + 2 + length])
            offset += 2 + length
        if fields[2] == COOKIE_NAME and (wanted is None or fields[1] in (wanted, b"")):
            return fields[3]
    return None
