"""Chat in the manager (in-memory sessions): the rate limit's minute, unread counts, retention,
a conversation ending with its session, the chat window opened in a session without a page."""

from __future__ import annotations

import asyncio
import time

import pytest

from polydesk.backends.fake import FakeBackend
from polydesk.core.model import RateLimited, Target
from tests.manager.helpers import ADMIN, ANA, TEACHER, MakeManager, logon_all


async def test_the_students_minute_and_the_teachers_freedom(
    make_manager: MakeManager, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr = await make_manager(chat_messages_per_minute=2)
    a, = await logon_all(mgr, "ana")
    await mgr.hand(ANA, a, True)  # a raised hand counts
    mgr.chat_send(ANA, a, "one")
    with pytest.raises(RateLimited, match="at most 2 a minute"):
        mgr.chat_send(ANA, a, "two")
    for n in range(5):
        mgr.chat_send(TEACHER, a, f"teacher {n}")  # Dashboard users are not limited
    later = time.monotonic() + 61
    monkeypatch.setattr("polydesk.manager.chat.time.monotonic", lambda: later)
    assert mgr.chat_send(ANA, a, "two").text == "two"  # a minute later


async def test_unread_retention_and_the_end_of_a_session(make_manager: MakeManager) -> None:
    mgr = await make_manager(chat_retention_hours=1.0)
    a, b = await logon_all(mgr, "ana", "bia")
    old = mgr.chat_send(TEACHER, a, "an old question")
    mgr.chat_send(ANA, a, "an answer")
    mgr.chat_send(TEACHER, b, "to bia")
    assert mgr.chat_unread(TEACHER) == {a: 1}
    assert [m.text for m in mgr.chat_history(TEACHER, a)] == ["an old question", "an answer"]
    assert mgr.chat_unread(TEACHER) == {}  # read now
    assert [m.text for m in mgr.chat_history(ADMIN, a, after=old.seq)] == ["an answer"]

    mgr.store.write(("UPDATE chat SET time = time - 7200 WHERE seq = ?", (old.seq,)))
    mgr.chat.prune()
    assert [m.text for m in mgr.chat_history(TEACHER, a)] == ["an answer"]

    await mgr.logoff(ADMIN, Target(ids=(a,)), force=True)
    for _ in range(100):  # the chat follows the bus: the ended session's conversation goes
        if not mgr.store.read("SELECT 1 FROM chat WHERE session_id = ?", (a,)):
            break
        await asyncio.sleep(0.02)
    assert mgr.store.read("SELECT 1 FROM chat WHERE session_id = ?", (a,)) == []
    assert mgr.store.read("SELECT text FROM chat WHERE session_id = ?", (b,)) == [("to bia",)]


async def test_a_session_without_a_station_page_gets_a_chat_window(make_manager: MakeManager) -> None:
    mgr = await make_manager()
    a, = await logon_all(mgr, "ana")
    backend = mgr.backends["fake"]
    assert isinstance(backend, FakeBackend)
    mgr.chat_send(ANA, a, "the student writes: nothing opens")
    mgr.chat_send(TEACHER, a, "the teacher answers")
    for _ in range(100):
        if backend.desktops[a].launched:
            break
        await asyncio.sleep(0.02)
    [argv] = backend.desktops[a].launched
    assert argv[0].endswith("xterm") and argv[-4:] == ["--socket", str(mgr.settings.api_socket), "chat", a]
    assert "the teacher answers" not in " ".join(argv)  # the words travel through the socket only
