"""The Xvnc host's block is all or nothing (issue 13, point 2): when the cover cannot start,
the session's input is put back on, not left dead under no cover."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.backends.sessions import (
    RfbClient,
    Sessions,
    data,
    typing_reaches_the_shell,
    windows,
    write_xsession,
)
from tests.users import TestUser


async def test_a_cover_that_cannot_start_leaves_the_input_on(
    sessions: Sessions, account: Callable[[str], TestUser], rfb: Callable[[str], RfbClient]
) -> None:
    user = account("cover")
    write_xsession(user, "exec openbox --startup 'xterm -e sh'\n")
    host = sessions.host()
    session = await sessions.start(user, host)
    await windows(host, session)
    await asyncio.sleep(0.5)  # the window manager gives the new xterm the focus
    client = rfb(data(session, "rfb_socket"))
    assert await typing_reaches_the_shell(client, user, "before", 5)
    # The failure as it was: a NUL reached the cover's argv after the input was switched off.
    with pytest.raises(ValueError, match="null byte"):
        await host.block(session, "a\x00b")
    assert await typing_reaches_the_shell(client, user, "after", 5)
