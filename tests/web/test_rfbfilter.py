"""The bridge's RFB reader: input dropped while blocked, everything else passed on in a form
Xvnc reads exactly as the reader did (held against a model of TigerVNC 1.12's own reader,
tests/xvncreader.py, and, in tests/web/test_station_desync.py, against Xvnc itself)."""

from __future__ import annotations

import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polydesk.web.rfbfilter import OPENING, ClientStream, ProtocolError
from tests.rfb import hidden_one_byte_ahead, key_events
from tests.rfbfuzz import client_stream, pieces
from tests.xvncreader import INPUT_EVENTS, Closed, XvncReader

HANDSHAKE = b"RFB 003.008\n" + b"\x01" + b"\x00"  # version, security None, ClientInit (exclusive)
KEY_A = struct.pack(">BBxxI", 4, 1, ord("a"))
POINTER = struct.pack(">BBHH", 5, 1, 10, 20)
UPDATE = struct.pack(">BBHHHH", 3, 1, 0, 0, 1280, 800)
ENCODINGS = struct.pack(">BxH3i", 2, 3, 0, 1, -223)
CUT = struct.pack(">BxxxI", 6, 5) + b"hello"
FENCE = struct.pack(">BxxxIB", 248, 0, 3) + b"abc"
PIXEL_FORMAT = struct.pack(">BxxxBBBBHHHBBBxxx", 0, 32, 24, 0, 1, 255, 255, 255, 16, 8, 0)
CONTINUOUS = struct.pack(">BBHHHH", 150, 1, 0, 0, 1280, 800)
QEMU_KEY = struct.pack(">BBHII", 255, 0, 1, ord("a"), 30)
DESKTOP_SIZE = struct.pack(">BxHHBxIHHHHI", 251, 1024, 768, 1, 0, 0, 0, 1024, 768, 0)
CAPS, REQUEST, PEEK, NOTIFY, PROVIDE = (1 << n for n in range(24, 29))


def extended(data: bytes) -> bytes:
    return struct.pack(">Bxxxi", 6, -len(data)) + data


def provide(text: bytes, finish: int = zlib.Z_SYNC_FLUSH) -> bytes:
    deflater = zlib.compressobj()
    plain = struct.pack(">I", len(text)) + text
    return struct.pack(">I", PROVIDE | 1) + deflater.compress(plain) + deflater.flush(finish)


def opened(allowed: bool = True) -> ClientStream:
    stream = ClientStream(lambda: allowed)
    assert stream.feed(HANDSHAKE) == b"\x01"
    return stream


def xvnc_reads(*outputs: bytes) -> list[tuple[str, object]]:
    """What Xvnc does with the bridge's opening, ClientInit and then ``outputs``, one read each."""
    xvnc = XvncReader()
    xvnc.receive(OPENING + b"\x01")
    events = [event for out in outputs for event in xvnc.receive(out)]
    assert xvnc.idle, f"Xvnc would be left inside a message: {bytes(xvnc.buffer)!r}"
    return events


def test_the_handshake_xvnc_gets_is_the_bridges_own_and_always_shared() -> None:
    stream = ClientStream(lambda: True)
    assert OPENING == b"RFB 003.008\n\x01"  # sent by the bridge the moment it connects
    assert stream.feed(b"RFB 003.008\n") == b""  # the station's is only checked
    assert stream.feed(b"\x01") == b""
    assert stream.feed(b"\x00") == b"\x01"  # ClientInit: shared, whatever the station asked
    assert xvnc_reads() == []


@pytest.mark.parametrize("version", [b"RFB 003.+08\n", b"RFB 003.8\n  ", b"RFB003.008\n ",
                                     b"RFB 003.007\n", b"RFB 003.003\n", b"RFB 003.009\n",
                                     b"GET / HTTP/1.1\r\n"])
def test_any_version_but_exactly_3_8_is_refused(version: bytes) -> None:
    with pytest.raises(ProtocolError, match=r"version 3\.8"):
        ClientStream(lambda: True).feed(version)


def test_the_version_trick_that_typed_into_a_session_is_refused() -> None:
    """What Xvnc (sscanf) reads as 3.8 and the old reader took for 3.3: one byte apart after."""
    trick = b"RFB 003.+08\n" + b"\x01" + hidden_one_byte_ahead(key_events("id\n"))
    xvnc = XvncReader()  # forwarded as it came, as the bridge used to:
    keys = [e for e in xvnc.receive(trick) if e[0] == "key"]
    assert xvnc.version == (3, 8) and len(keys) == 6
    with pytest.raises(ProtocolError):
        ClientStream(lambda: False).feed(trick)


def test_other_security_types_are_refused() -> None:
    with pytest.raises(ProtocolError, match="None security"):
        ClientStream(lambda: True).feed(b"RFB 003.008\n\x02")


def test_input_passes_when_allowed_and_is_dropped_when_not() -> None:
    allowed = [True]
    stream = ClientStream(lambda: allowed[0])
    stream.feed(HANDSHAKE)
    messages = ENCODINGS + UPDATE + KEY_A + POINTER + CUT + FENCE + QEMU_KEY
    assert stream.feed(messages) == messages
    allowed[0] = False
    assert stream.feed(messages) == ENCODINGS + UPDATE + FENCE
    assert stream.dropped == 4


def test_every_message_is_written_again_in_its_canonical_form() -> None:
    stream = opened()
    sloppy = {  # padding and booleans as a client may send them: Xvnc ignores or reads them alike
        struct.pack(">BBHHHH", 3, 7, 1, 2, 3, 4): struct.pack(">BBHHHH", 3, 1, 1, 2, 3, 4),
        struct.pack(">BBHI", 4, 9, 0xABCD, 0x61): struct.pack(">BBxxI", 4, 1, 0x61),
        struct.pack(">BBHHHH", 150, 2, 0, 0, 9, 9): struct.pack(">BBHHHH", 150, 1, 0, 0, 9, 9),
        struct.pack(">BBHI", 2, 5, 1, 7): struct.pack(">BxHi", 2, 1, 7),
        struct.pack(">BBBBI", 6, 1, 2, 3, 2) + b"hi": struct.pack(">BxxxI", 6, 2) + b"hi",
        struct.pack(">BBBBIB", 248, 1, 1, 1, 3, 1) + b"x": struct.pack(">BxxxIB", 248, 3, 1) + b"x",
        struct.pack(">BBHII", 255, 0, 0x100, 0x61, 30): struct.pack(">BBHII", 255, 0, 1, 0x61, 30),
        PIXEL_FORMAT[:1] + b"\xff\xff\xff" + PIXEL_FORMAT[4:6] + b"\x05\x06" + PIXEL_FORMAT[8:17]
        + b"zzz": PIXEL_FORMAT[:6] + b"\x01\x01" + PIXEL_FORMAT[8:],
    }
    for message, canonical in sloppy.items():
        assert stream.feed(message) == canonical, message
    assert len(xvnc_reads(*sloppy.values())) == len(sloppy)


def test_messages_split_at_every_byte_are_put_back_together() -> None:
    data = HANDSHAKE + ENCODINGS + KEY_A + UPDATE + CUT + FENCE + PIXEL_FORMAT + CONTINUOUS \
        + QEMU_KEY + extended(provide(b"caf\xc3\xa9")) + extended(struct.pack(">II", CAPS | 1, 0))
    whole = opened(False).feed(data[len(HANDSHAKE):])
    assert whole == ENCODINGS + UPDATE + FENCE + PIXEL_FORMAT + CONTINUOUS
    for cut in range(1, len(data)):
        stream = ClientStream(lambda: False)
        assert stream.feed(data[:cut]) + stream.feed(data[cut:]) == b"\x01" + whole, cut
    stream = ClientStream(lambda: False)
    assert b"".join(stream.feed(data[i:i + 1]) for i in range(len(data))) == b"\x01" + whole


def test_unknown_messages_and_ones_xvnc_would_hang_up_on_end_the_connection() -> None:
    for message, reason in ((b"\x63" + b"\0" * 20, "unknown RFB client message type 99"),
                            (b"\xfa\0\x01\x02", "type 250"),  # XVP: Xvnc 1.12 does not read it
                            (struct.pack(">BBHII", 255, 1, 1, 0x61, 30), "QEMU"),
                            (struct.pack(">BxxxI", 6, 0x80000000), "impossible length"),
                            (struct.pack(">Bxxxi", 6, -3) + b"abc", "impossible length"),
                            (extended(struct.pack(">I", 1 << 29)), "unknown action"),
                            (extended(struct.pack(">I", CAPS | 3) + b"\0\0\0\0"), "length for each"),
                            (extended(struct.pack(">I", PROVIDE | 1) + b"not zlib"), "inflate"),
                            (extended(struct.pack(">I", PROVIDE | 3) + provide(b"one")[4:]), "ends")):
        with pytest.raises(ProtocolError, match=reason):
            opened().feed(message)


def test_set_desktop_size_never_reaches_xvnc() -> None:
    """Xvnc 1.12 reads a SetDesktopSize whose body comes late as a one-byte message."""
    padded = DESKTOP_SIZE[:1] + b"\x04" + DESKTOP_SIZE[2:]  # a padding byte Xvnc ignores...
    assert XvncReader(state="normal").receive(padded)[0][0] == "desktop-size"
    late = XvncReader(state="normal")
    late.receive(padded[:1])
    assert late.receive(padded[1:])[0][0] == "key"  # ...unless the rest comes late: then a key
    stream = opened(allowed=True)
    assert stream.feed(padded + UPDATE) == UPDATE and stream.dropped == 1


def test_extended_clipboard_messages_are_cut_to_what_xvnc_reads() -> None:
    hidden = key_events("id\n")  # what Xvnc would read after the bytes it takes
    caps = struct.pack(">II", CAPS | NOTIFY | 1, 1024)  # one format, one length; then the hidden
    stream = opened()
    for message, kept, name in ((caps + hidden, caps[:8], "caps"),
                                (struct.pack(">I", REQUEST | 1) + hidden, struct.pack(">I", REQUEST | 1),
                                 "request"),
                                (struct.pack(">I", NOTIFY) + hidden, struct.pack(">I", NOTIFY), "notify"),
                                (struct.pack(">I", PEEK) + hidden, struct.pack(">I", PEEK), "peek")):
        passed_as_it_came = XvncReader(state="normal").receive(extended(message))
        assert [e[0] for e in passed_as_it_came].count("key") == 6, passed_as_it_came
        assert stream.feed(extended(message)) == extended(kept)
        assert xvnc_reads(extended(kept)) == [(f"clipboard-{name}", struct.unpack_from(">I", kept)[0])]
    # a provided text is inflated and written again, so the stream ends where Xvnc stops
    for finish in (zlib.Z_SYNC_FLUSH, zlib.Z_FINISH):
        sent = provide("café ✓".encode(), finish) + (hidden if finish == zlib.Z_FINISH else b"")
        out = stream.feed(extended(sent))
        assert xvnc_reads(out) == [("clipboard", ["café ✓".encode()])]
    assert stream.feed(extended(struct.pack(">I", PROVIDE) + b"junk")) == extended(struct.pack(">I", PROVIDE))


def test_clipboard_texts_and_fences_xvnc_ignores_are_consumed_and_not_passed_on() -> None:
    stream = opened()
    big = 256 * 1024 + 1
    assert stream.feed(struct.pack(">BxxxI", 6, big) + b"x" * 1000) == b""
    assert stream.feed(b"x" * (big - 1000)) == b""  # consumed as it comes, never buffered whole
    assert stream.feed(UPDATE) == UPDATE
    assert stream.feed(extended(b"\0" * big) + UPDATE) == UPDATE
    long_fence = struct.pack(">BxxxIB", 248, 1, 65) + b"f" * 65
    assert stream.feed(long_fence + FENCE) == FENCE


def test_encodings_that_would_reframe_pointer_events_are_never_asked_for() -> None:
    stream = opened()
    asked = struct.pack(">BxH4i", 2, 4, 7, -316, 0, -258)  # Tight, ExtendedMouseButtons, Raw, QEMU keys
    assert stream.feed(asked) == struct.pack(">BxH3i", 2, 3, 7, 0, -258)
    assert stream.feed(ENCODINGS) == ENCODINGS


def check_against_xvnc(rng: random.Random) -> None:
    """One generated stream: Xvnc, reading what the bridge passes on (in reads cut anywhere),
    never hangs up, is between two messages after each write of the bridge, and sees no input
    from what the bridge wrote while input was dropped."""
    allowed = [True]
    stream = ClientStream(lambda: allowed[0])
    xvnc = XvncReader()
    xvnc.receive(OPENING)
    for piece in pieces(rng, client_stream(rng)):
        allowed[0] = rng.random() < 0.5
        try:
            out = stream.feed(piece)
        except ProtocolError:
            return
        try:  # the kernel may hand Xvnc what the bridge wrote in any number of reads
            events = [event for read in pieces(rng, out) for event in xvnc.receive(read)]
        except Closed as exc:
            raise AssertionError(f"Xvnc would hang up on what the bridge passed: {exc}") from exc
        assert xvnc.idle, f"Xvnc reads {bytes(xvnc.buffer)!r} as the start of another message"
        if not allowed[0]:
            assert not [e for e in events if e[0] in INPUT_EVENTS], events


@settings(max_examples=600, deadline=None)
@given(st.randoms(use_true_random=False))
def test_xvnc_reads_what_the_bridge_passes_exactly_as_the_bridge_did(rng: random.Random) -> None:
    check_against_xvnc(rng)


def test_a_desktop_size_is_told_to_the_bridge_and_never_forwarded() -> None:
    """Issue 14.4: the station's own size reaches the daemon (which resizes through RandR);
    Xvnc never gets the message; a viewer's or a blocked station's is not even told."""
    import struct as _struct

    from polydesk.web.rfbfilter import OPENING as _OPENING
    from polydesk.web.rfbfilter import ClientStream as _Stream
    message = _struct.pack(">BxHHBx", 251, 768, 986, 1, ) + _struct.pack(">IHHHHI", 0, 0, 0, 768, 986, 0)
    for allowed, told in ((True, [(768, 986)]), (False, [])):
        sizes: list[tuple[int, int]] = []
        stream = _Stream(lambda allowed=allowed: allowed, lambda w, h, sizes=sizes: sizes.append((w, h)))
        out = stream.feed(_OPENING[:12] + b"\x01\x01")
        for piece in (message[:1], message[1:5], message[5:]):  # late bytes, as Xvnc 1.12 misreads
            out += stream.feed(piece)
        assert out == b"\x01" and sizes == told
