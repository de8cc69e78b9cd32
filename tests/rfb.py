"""A minimal RFB 3.8 client for tests: log on to a session's Unix socket and type."""

from __future__ import annotations

import socket
import struct
import time

KEYSYMS = {"\n": 0xFF0D, "\t": 0xFF09, "\b": 0xFF08}


class RfbClient:
    """Just enough RFB 3.8 to log on with security type None and type keys.

    Straight onto the session's Unix socket, as the daemon's bridge does; vncdotool
    (Twisted, host::port) would need a TCP relay and a dependency for the same thing.
    """

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        version = self._read(12)
        assert version.startswith(b"RFB 003."), version
        self.sock.sendall(b"RFB 003.008\n")
        (count,) = self._read(1)
        types = self._read(count)
        assert 1 in types, f"security type None not offered: {list(types)}"
        self.sock.sendall(b"\x01")
        assert self._read(4) == b"\0\0\0\0", "security handshake failed"
        self.sock.sendall(b"\x01")  # ClientInit: shared
        self.width, self.height = struct.unpack(">HH", self._read(4))
        self._read(16)  # pixel format
        (name_length,) = struct.unpack(">I", self._read(4))
        self.name = self._read(name_length).decode()

    def _read(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.sock.recv(size - len(data))
            if not chunk:
                raise ConnectionError("server closed the connection")
            data += chunk
        return data

    def key(self, keysym: int) -> None:
        for down in (1, 0):
            self.sock.sendall(struct.pack(">BBxxI", 4, down, keysym))

    def type(self, text: str) -> None:
        for char in text:
            self.key(KEYSYMS.get(char, ord(char)))
            time.sleep(0.01)

    def closed_by_server(self, timeout: float) -> bool:
        """True if the server hangs up within ``timeout`` (whatever it sends meanwhile is dropped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                if not self.sock.recv(65536):
                    return True
            except TimeoutError:
                return False
            except OSError:
                return True
        return False

    def close(self) -> None:
        self.sock.close()
