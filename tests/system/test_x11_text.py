"""Pure parts of system/x11: text wrapping (helper windows and the thumbnail placeholder)
and reading a cookie out of an Xauthority file the session's user may have mangled."""

from __future__ import annotations

from polydesk.system.x11.drawing import font, wrap
from polydesk.system.x11.xauth import COOKIE_NAME, cookie_in, xauthority_bytes


def test_wrap_keeps_line_breaks_and_gives_a_long_word_its_own_line() -> None:
    face = font(16)
    width = face.getlength("short words here")
    lines = wrap("short words here and more\nsecond\n" + "x" * 200, face, width)
    assert lines[0] == "short words here"
    assert all(face.getlength(line) <= width for line in lines if " " in line)
    assert "second" in lines and "x" * 200 in lines
    assert wrap("", face, width) == [""]


def test_a_cookie_is_found_for_its_display_and_not_in_a_cut_file() -> None:
    raw = xauthority_bytes(12, b"c" * 16)
    assert cookie_in(raw) == b"c" * 16
    assert cookie_in(raw, 12) == b"c" * 16  # the FamilyWild entry names display 12
    first = raw[:raw.index(b"c" * 16) + 16]  # the FamilyWild entry alone
    assert cookie_in(first) == b"c" * 16
    assert cookie_in(first[:-1]) is None  # cut inside the cookie: no half cookie
    assert cookie_in(b"") is None
    assert COOKIE_NAME in raw
