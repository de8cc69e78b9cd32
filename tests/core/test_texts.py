"""The one rule for text people send (texts.check_text), and the schema's statement of it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polydesk.core.model import InvalidRequest
from polydesk.core.texts import MAX_TEXT, NOT_BLANK_PATTERN, TEXT_PATTERN, check_text


@pytest.mark.parametrize("bad", ["\x00", "a\x1b[2J", "\x07", "\x7f", "\x85", "\x9b", "\ud800", "\x0b"])
def test_control_characters_are_refused_by_name_and_place(bad: str) -> None:
    with pytest.raises(InvalidRequest, match=r"^message: control character U\+[0-9A-F]{4} at position \d+"):
        check_text("message", "ok " + bad)


def test_what_is_text() -> None:
    assert check_text("text", "Olá, turma!\n\tAté amanhã.\r\n") is not None
    assert check_text("message", None) is None
    for value, why in ((None, "empty"), ("  \n\t", "empty"), (42, "must be text"),
                       ("x" * (MAX_TEXT + 1), "longer")):
        with pytest.raises(InvalidRequest, match=f"^text: .*{why}"):
            check_text("text", value, required=True)


@given(st.text(max_size=40))
def test_the_schema_says_what_the_check_does(text: str) -> None:
    def accepted(required: bool) -> bool:
        try:
            check_text("text", text, required=required)
        except InvalidRequest:
            return False
        return True

    assert accepted(False) == bool(re.fullmatch(TEXT_PATTERN, text))
    assert accepted(True) == bool(re.fullmatch(NOT_BLANK_PATTERN, text))
