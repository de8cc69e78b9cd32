"""The extended clipboard message (a ClientCutText of negative length), read as TigerVNC 1.12
reads it and written again in the one form both ends agree on.

Xvnc does not always consume the length the message declares: a "caps" message is read as
its flags and one length per format, a request, peek or notify as its flags alone, and the
rest of the declared bytes would be taken for new messages. A "provide" message is a zlib
stream per message; Xvnc inflates it until the declared length is used up (and can spin for
ever on bytes that follow a finished stream). So every message is rebuilt from what Xvnc
would have read, at exactly the length it reads.
"""

from __future__ import annotations

import struct
import zlib

CAPS, REQUEST, PEEK, NOTIFY, PROVIDE = (1 << n for n in range(24, 29))
ACTION_MASK = 0xFF000000
FORMATS = 16  # the low 16 bits of the flags are formats (text is bit 0)


def extended_clipboard(payload: bytes, limit: int) -> bytes:
    """The canonical form of an extended clipboard payload (flags and what follows).

    ``limit`` bounds the inflated size of a provide message. ValueError for a message Xvnc
    would refuse (and hang up on) or that is larger than ``limit``.
    """
    (flags,) = struct.unpack_from(">I", payload)
    action = flags & ACTION_MASK
    formats = [bit for bit in range(FORMATS) if flags & (1 << bit)]
    if action & CAPS:  # whatever the other action bits say
        size = 4 + 4 * len(formats)
        if len(payload) < size:
            raise ValueError("caps without a length for each format")
        return payload[:size]
    if action in (REQUEST, PEEK, NOTIFY):
        return payload[:4]
    if action == PROVIDE:
        return payload[:4] + _provide(payload[4:], formats, limit)
    raise ValueError(f"unknown action {action >> 24:#x}")


def _provide(compressed: bytes, formats: list[int], limit: int) -> bytes:
    if not formats:
        return b""  # no stream at all: Xvnc hangs up on one that inflates to nothing it reads
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(compressed, limit + 1)
    except zlib.error as exc:
        raise ValueError(f"its data does not inflate ({exc})") from exc
    if len(data) > limit:
        raise ValueError(f"its data inflates to more than {limit} bytes")
    plain = bytearray()
    offset = 0
    for _ in formats:  # a length and that many bytes per format, as Xvnc reads them
        if offset + 4 > len(data):
            raise ValueError("its data ends before a format's length")
        (length,) = struct.unpack_from(">I", data, offset)
        end = offset + 4 + length
        if end > len(data):
            raise ValueError("its data ends inside a format")
        plain += data[offset:end]
        offset = end
    # A stream that is flushed but not finished, as TigerVNC's own viewer sends: after a
    # finished one, Xvnc 1.12 can loop for ever on the remaining bytes.
    deflater = zlib.compressobj()
    return deflater.compress(bytes(plain)) + deflater.flush(zlib.Z_SYNC_FLUSH)
