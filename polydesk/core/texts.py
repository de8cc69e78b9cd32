"""Text from people that Polydesk shows in a session, hands to a helper or writes to a file.

One rule, checked once at the boundary every interface goes through (the manager): text is
a string of at most ``MAX_TEXT`` characters with no control character but tab, newline and
carriage return, and no lone surrogate. A NUL cannot go into a helper's argv (the spawn
fails), a lone surrogate cannot be encoded for argv or SQLite, and the other controls
draw nothing a reader can see but can move a terminal's cursor. Pure: imports only ``model``.

The OpenAPI document states the same rule as a regular expression (``TEXT_PATTERN``,
``NOT_BLANK_PATTERN``) for clients and schemathesis; the check here is what holds.
"""

from __future__ import annotations

import re

from polydesk.core.model import InvalidRequest

MAX_TEXT = 2000
# Cc (C0, DEL, C1) less \t \n \r. Written with \x escapes that ECMA, Rust and Python agree on.
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
TEXT_PATTERN = rf"^[^{_CONTROLS}]*$"
# Not blank either: one character that is neither a control nor a space. Python's
# str.strip() also strips \x1c-\x1f and \x85, which are controls here anyway.
NOT_BLANK_PATTERN = rf"^[^{_CONTROLS}]*[^\s{_CONTROLS}][^{_CONTROLS}]*$"
# A name (a station's, a group's, a user's in a group): one line, no control character at all, not blank.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f][^\x00-\x1f\x7f-\x9f]*$"
_FORBIDDEN = re.compile(rf"[{_CONTROLS}\ud800-\udfff]")


def check_text(field: str, value: object, *, max_length: int = MAX_TEXT,
               required: bool = False) -> str | None:
    """``value`` if it is acceptable text for ``field``; InvalidRequest naming the field if not.

    None passes unless ``required`` (then it, and blank text, is refused as empty).
    """
    if value is None:
        if required:
            raise InvalidRequest(f"{field}: the text is empty")
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{field}: must be text, not {type(value).__name__}")
    if len(value) > max_length:
        raise InvalidRequest(f"{field}: the text is longer than {max_length} characters")
    bad = _FORBIDDEN.search(value)
    if bad is not None:
        raise InvalidRequest(f"{field}: control character U+{ord(bad.group()):04X} at position "
                             f"{bad.start()}; text may hold no control character but tab, line feed "
                             "and carriage return")
    if required and not value.strip():
        raise InvalidRequest(f"{field}: the text is empty")
    return value
