"""A minimal RFB 3.8 client for tests: log on to a session's Unix socket and type; and the client
messages an attacker builds to make the bridge's reader and Xvnc read one stream differently."""

from __future__ import annotations

import socket
import struct
import time
from typing import Any

KEYSYMS = {"\n": 0xFF0D, "\t": 0xFF09, "\b": 0xFF08}


def key_events(text: str) -> bytes:
    """KeyEvent messages typing ``text`` (each key down, then up)."""
    return b"".join(struct.pack(">BBxxI", 4, down, KEYSYMS.get(char, ord(char)))
                    for char in text for down in (1, 0))


def hidden_one_byte_ahead(messages: bytes) -> bytes:
    """A SetEncodings message for a reader that runs one byte ahead of Xvnc.

    Xvnc, still waiting for ClientInit, takes the type byte (2) for it; the padding byte (3)
    starts a FramebufferUpdateRequest whose body is the count and 7 bytes of "encodings"; from
    there on Xvnc reads ``messages`` (KeyEvents, say), which the reader took for encodings.
    """
    filler = (b"\x03" + bytes(3))[:-(7 + len(messages)) % 4]  # a request Xvnc waits for: harmless
    payload = bytes(7) + messages + filler
    return struct.pack(">BBH", 2, 3, len(payload) // 4) + payload


class RfbClient:
    """Just enough RFB 3.8 to log on with security type None and type keys.

    Straight onto the session's Unix socket, as the daemon's bridge does; vncdotool
    (Twisted, host::port) would need a TCP relay and a dependency for the same thing.
    """

    def __init__(self, path: str, timeout: float = 5.0) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        sock.connect(path)
        self._handshake(sock)

    @classmethod
    def over(cls, sock: Any) -> RfbClient:
        """The same client over anything with recv/sendall/settimeout/close (the station bridge)."""
        client = cls.__new__(cls)
        client._handshake(sock)
        return client

    def _handshake(self, sock: Any) -> None:
        self.sock = sock
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

    def press(self, *keysyms: int) -> None:
        """A key combination: every key down in order, then up in reverse (Alt+F4 ...)."""
        for keysym in keysyms:
            self.sock.sendall(struct.pack(">BBxxI", 4, 1, keysym))
        for keysym in reversed(keysyms):
            self.sock.sendall(struct.pack(">BBxxI", 4, 0, keysym))

    def click(self, x: int, y: int, button: int = 1) -> None:
        mask = 1 << (button - 1)
        self.sock.sendall(struct.pack(">BBHH", 5, mask, x, y))
        self.sock.sendall(struct.pack(">BBHH", 5, 0, x, y))

    def type(self, text: str) -> None:
        for char in text:
            self.key(KEYSYMS.get(char, ord(char)))
            time.sleep(0.01)

    def framebuffer(self, timeout: float = 10.0) -> bytes:
        """Ask for the whole screen in Raw encoding and return its pixels (32 bpp, as Xvnc sends)."""
        self.sock.sendall(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw only
        self.sock.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, self.width, self.height))
        pixels = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            (kind,) = self._read(1)
            if kind == 2:  # Bell
                continue
            if kind == 3:  # ServerCutText
                self._read(3)
                (length,) = struct.unpack(">I", self._read(4))
                self._read(length)
                continue
            assert kind == 0, f"unexpected server message {kind}"
            (count,) = struct.unpack(">xH", self._read(3))
            for _ in range(count):
                _x, _y, w, h, encoding = struct.unpack(">HHHHi", self._read(12))
                assert encoding == 0, f"asked for Raw, got encoding {encoding}"
                pixels += self._read(w * h * 4)
            if len(pixels) >= self.width * self.height * 4:
                return bytes(pixels)
        raise TimeoutError("no whole framebuffer update arrived")

    def server_message(self) -> tuple[int, bytes]:
        """The next message Xvnc sends but framebuffer updates (Raw only, skipped): its type and,
        for ServerCutText, the text (or, extended, the flags and data after the length)."""
        while True:
            (kind,) = self._read(1)
            if kind == 0:
                (count,) = struct.unpack(">xH", self._read(3))
                for _ in range(count):
                    _x, _y, w, h, encoding = struct.unpack(">HHHHi", self._read(12))
                    assert encoding == 0, f"asked for Raw, got encoding {encoding}"
                    self._read(w * h * 4)
                continue
            if kind == 2:  # Bell
                return kind, b""
            assert kind == 3, f"unexpected server message {kind}"
            (length,) = struct.unpack(">xxxi", self._read(7))
            return kind, self._read(abs(length))

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
