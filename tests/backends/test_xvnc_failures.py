"""The Xvnc backend's block is all or nothing (issue 13, point 2): when the cover cannot start,
the session's input is put back on, not left dead under no cover."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.backends.sessions import (
    RfbClient,
    Sessions,
    typing_reaches_the_shell,
    typing_session,
)
from tests.users import TestUser


async def test_a_cover_that_cannot_start_leaves_the_input_on(
    sessions: Sessions, account: Callable[[str], TestUser], rfb: Callable[[str], RfbClient]
) -> None:
    user = account("cover")
    backend, session, client = await typing_session(sessions, user, rfb)
    # The failure as it was: a NUL reached the cover's argv after the input was switched off.
    with pytest.raises(ValueError, match="null byte"):
        await backend.block(session, "a\x00b")
    assert await typing_reaches_the_shell(client, user, "after", 5)
