"""The bridge's RFB reader: input dropped while blocked, everything else passed intact."""

from __future__ import annotations

import struct

import pytest

from polydesk.web.rfbfilter import ClientStream, ProtocolError

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x00"  # version, security None, ClientInit (exclusive)
KEY_A = struct.pack(">BBxxI", 4, 1, ord("a"))
POINTER = struct.pack(">BBHH", 5, 1, 10, 20)
UPDATE = struct.pack(">BBHHHH", 3, 1, 0, 0, 1280, 800)
ENCODINGS = struct.pack(">BxH3i", 2, 3, 0, 1, -223)
CUT = struct.pack(">BxxxI", 6, 5) + b"hello"
FENCE = struct.pack(">BxxxIB", 248, 0, 3) + b"abc"


def test_handshake_is_forwarded_and_made_shared() -> None:
    stream = ClientStream(lambda: True)
    assert stream.feed(HANDSHAKE) == b"RFB 003.008\n\x01\x01"


def test_input_passes_when_allowed_and_is_dropped_when_not() -> None:
    allowed = [True]
    stream = ClientStream(lambda: allowed[0])
    stream.feed(HANDSHAKE)
    messages = ENCODINGS + UPDATE + KEY_A + POINTER + CUT + FENCE
    assert stream.feed(messages) == messages
    allowed[0] = False
    assert stream.feed(messages) == ENCODINGS + UPDATE + FENCE
    assert stream.dropped == 3


def test_messages_split_anywhere_are_put_back_together() -> None:
    stream = ClientStream(lambda: False)
    data = HANDSHAKE + ENCODINGS + KEY_A + UPDATE + CUT + FENCE
    out = b"".join(stream.feed(data[i:i + 1]) for i in range(len(data)))
    assert out == b"RFB 003.008\n\x01\x01" + ENCODINGS + UPDATE + FENCE


def test_unknown_message_ends_the_connection() -> None:
    stream = ClientStream(lambda: True)
    stream.feed(HANDSHAKE)
    with pytest.raises(ProtocolError, match="unknown RFB client message type 99"):
        stream.feed(b"\x63" + b"\0" * 20)


def test_other_protocols_and_security_types_are_refused() -> None:
    with pytest.raises(ProtocolError):
        ClientStream(lambda: True).feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(ProtocolError):
        ClientStream(lambda: True).feed(b"RFB 003.008\n\x02")


def test_encodings_that_would_reframe_pointer_events_are_never_asked_for() -> None:
    stream = ClientStream(lambda: True)
    stream.feed(HANDSHAKE)
    asked = struct.pack(">BxH4i", 2, 4, 7, -316, 0, -258)  # Tight, ExtendedMouseButtons, Raw, QEMU keys
    assert stream.feed(asked) == struct.pack(">BxH3i", 2, 3, 7, 0, -258)
    assert stream.feed(ENCODINGS) == ENCODINGS  # nothing to take out: passed as it came
