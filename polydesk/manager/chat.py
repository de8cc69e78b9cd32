"""Chat: a conversation per session between its user and the Dashboard users (docs/chat.md).

The conversation is plain text checked at this boundary as every text is (texts.check_text:
control characters other than tab and line breaks are refused, not escaped, so what is stored
is what every reader shows as typed) and capped at ``chat_max_length``. It is kept in SQLite
(a daemon killed with -9 loses nothing written), ends with its session and is dropped after
``chat_retention_hours``.

Roles (policy.Action.CHAT, as message): a session's user writes in their own session only; a
Dashboard user or an administrator writes in the sessions they may message, and only they read
them. The session's user ("student" in the records) is rate-limited
(``chat_messages_per_minute``, raised hands count), so a student cannot flood the Dashboards.
The audit log records who chatted in which session, never the words. Each message is
published as a ``chat`` event (no session in it); the events socket hands it only to callers
who may chat in that session (web/routes/events.py). A raised hand is a field of the session
(``hand_raised_at``), so it reaches the Dashboards as any change of a session does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polydesk
from polydesk.core import policy
from polydesk.core.events import Event
from polydesk.core.i18n import N_
from polydesk.core.model import (
    Action,
    BackendError,
    Caller,
    NotPermitted,
    Outcome,
    RateLimited,
    Session,
    Status,
    StoreError,
    UnknownSession,
    UnknownUser,
)
from polydesk.core.texts import MAX_TEXT, check_text
from polydesk.manager.parts import Parts
from polydesk.manager.stations import Mode
from polydesk.store.store import Priority
from polydesk.system import processes

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 300.0
# Shown in a session without a station page when no chat window can be opened there (the words
# the teacher wrote come first, as typed).
ANSWER_HINT = N_("To answer, open a terminal and type: polydesk chat")
HISTORY = 500  # the most a reader is given at once: the newest messages


@dataclass(frozen=True)
class ChatMessage:
    seq: int
    session_id: str
    time: float
    sender: str  # the user who wrote it
    student: bool  # written by the session's user (else by a Dashboard user)
    text: str

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "session_id": self.session_id, "time": self.time,
                "sender": self.sender, "from": "student" if self.student else "teacher",
                "text": self.text}


def max_length(limit: int) -> int:
    """The ``chat_max_length`` setting, kept within what every text may be."""
    return max(1, min(limit, MAX_TEXT))


class Chat:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.sent: dict[str, deque[float]] = {}  # session id -> when its user last sent (the limit)
        self.follower: asyncio.Task[None] | None = None
        self.showing: set[asyncio.Task[None]] = set()  # message windows being opened
        self.windows: dict[str, tuple[int, int | None]] = {}  # session id -> its chat window (pid, start)

    # the use cases

    def history(self, caller: Caller, session_id: str, after: int = 0) -> list[ChatMessage]:
        """The conversation (its newest ``HISTORY`` messages after ``after``); the caller has
        read it from now on (their unread count is 0)."""
        session = self._allowed(caller, session_id)
        rows = self.parts.store.read(
            "SELECT seq, session_id, time, sender, student, text FROM chat WHERE session_id = ? "
            "AND seq > ? ORDER BY seq DESC LIMIT ?", (session.id, after, HISTORY))
        messages = [ChatMessage(int(a), str(b), float(c), str(d), bool(e), str(f))
                    for a, b, c, d, e, f in reversed(rows)]
        if messages:
            self._mark_read(caller, session.id, messages[-1].seq)
        return messages

    def send(self, caller: Caller, session_id: str, text: object) -> ChatMessage:
        checked = check_text("text", text, required=True,
                             max_length=max_length(self.parts.settings.chat_max_length))
        assert checked is not None
        self.parts.store.ensure_space(Priority.NORMAL)
        session = self._allowed(caller, session_id, write=True)
        student = policy.owns(caller, session)
        if student:
            self._count(session.id)
        now = time.time()
        cursor = self.parts.store.write((
            "INSERT INTO chat (session_id, time, sender, student, text) VALUES (?, ?, ?, ?, ?)",
            (session.id, now, caller.user, int(student), checked)))
        message = ChatMessage(int(cursor.lastrowid or 0), session.id, now, caller.user, student, checked)
        self._mark_read(caller, session.id, message.seq)
        self.parts.audit.one(caller, Action.CHAT, Outcome(session.id, Status.SHOWN, session.user),
                             detail={"op": "send", "from": "student" if student else "teacher"})
        self.parts.bus.publish(Event("chat", session.id, None, message.to_json()))
        if not student and not self._has_station_page(session.id):
            self._show_in_session(session, message)
        return message

    async def hand(self, caller: Caller, session_id: str, raised: bool) -> Session:
        """Raise (only the session's user) or lower (they, or who may chat with them) the hand."""
        session = self._allowed(caller, session_id, write=True, op="raise-hand" if raised else "lower-hand")
        if raised and not policy.owns(caller, session):
            self._refuse(caller, session, "raise-hand", "only the session's user raises its hand")
        async with self.parts.lock(session.id):
            current = self.parts.store.session(session.id)
            if current is None:
                raise UnknownSession(session.id)
            if (current.hand_raised_at is not None) == raised:
                return current  # as asked already: nothing to tell anyone
            if raised:
                self._count(session.id)
            changed = self.parts.set(current.with_(hand_raised_at=time.time() if raised else None))
        self.parts.audit.one(caller, Action.CHAT, Outcome(session.id, Status.SHOWN, session.user),
                             detail={"op": "raise-hand" if raised else "lower-hand"})
        return changed

    def unread(self, caller: Caller) -> dict[str, int]:
        """Per session the caller may chat in (not their own): messages from its user they
        have not read yet. Sessions with none are left out."""
        counts = self.parts.store.read(
            "SELECT c.session_id, count(*) FROM chat c LEFT JOIN chat_read r "
            "ON r.session_id = c.session_id AND r.reader = ? "
            "WHERE c.student = 1 AND c.seq > coalesce(r.seq, 0) GROUP BY c.session_id", (caller.user,))
        sessions = {s.id: s for s in self.parts.sessions_now()}
        return {str(sid): int(n) for sid, n in counts
                if sid in sessions and not policy.owns(caller, sessions[sid])
                and policy.may(caller, Action.CHAT, sessions[sid])}

    def may_read(self, caller: Caller, session: Session) -> bool:
        """Who is handed a session's chat events: its user and who may chat with them."""
        return bool(policy.may(caller, Action.CHAT, session))

    # the conversation's life

    async def start(self) -> None:
        self.prune()
        self.follower = asyncio.create_task(self._follow(), name="chat")

    async def close(self) -> None:
        tasks = [*self.showing, *([self.follower] if self.follower is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def prune(self) -> None:
        """Drop messages past their retention and the conversations of sessions that ended
        (while the daemon was away too)."""
        live = [s.id for s in self.parts.store.sessions()]
        marks = ",".join("?" * len(live))
        hours = self.parts.settings.chat_retention_hours
        cutoff = time.time() - hours * 3600 if hours > 0 else 0.0
        with contextlib.suppress(StoreError):  # a full disk: try again next time
            self.parts.store.write(
                ("DELETE FROM chat WHERE time < ? OR session_id NOT IN (" + marks + ")",
                 (cutoff, *live)),
                ("DELETE FROM chat_read WHERE session_id NOT IN (" + marks + ")", tuple(live)))

    def forget(self, session_id: str) -> None:
        self.sent.pop(session_id, None)
        self.windows.pop(session_id, None)
        with contextlib.suppress(StoreError):
            self.parts.store.write(("DELETE FROM chat WHERE session_id = ?", (session_id,)),
                                   ("DELETE FROM chat_read WHERE session_id = ?", (session_id,)))

    async def _follow(self) -> None:
        async with self.parts.bus.subscribe() as queue:
            while True:
                try:  # not wait_for: on 3.11 it can swallow a cancellation that meets an event
                    async with asyncio.timeout(PRUNE_EVERY_S):
                        event = await queue.get()
                except TimeoutError:
                    self.prune()
                    continue
                if event.kind == "session-ended":
                    self.forget(event.session_id)

    # sessions without a station page (a logind seat, a native VNC client)

    def _has_station_page(self, session_id: str) -> bool:
        """The user's own browser station (a web sign-in) is open: its chat panel shows the words."""
        return any(station.signin is not None for station in self.parts.stations.of(session_id, Mode.OWN))

    def _show_in_session(self, session: Session, message: ChatMessage) -> None:
        """The conversation in a window of the session: a terminal running ``polydesk chat`` as
        its user, who reads and answers there through the API socket (the kernel names them:
        SO_PEERCRED; they write only in their own session). Without a terminal program, or where
        the backend cannot start one, the teacher's words in the message window, with how to
        answer."""
        text = f"{message.sender}: {message.text}\n\n{self.parts.in_session(session, ANSWER_HINT)}"

        async def show() -> None:
            try:
                if await self._open_window(session):
                    return
            except BackendError as exc:
                log.info("chat: session %s: no chat window (%s); a message window instead", session.id, exc)
            try:
                await self.parts.backend(session).message(session, text, None)
            except BackendError as exc:  # the words are stored and on the events socket all the same
                log.warning("chat: session %s: the message window failed: %s", session.id, exc)

        task = asyncio.get_running_loop().create_task(show(), name=f"chat-window-{session.id}")
        self.showing.add(task)
        task.add_done_callback(self.showing.discard)

    async def _open_window(self, session: Session) -> bool:
        """The session's chat window is open (it shows what comes next by itself), or opened now."""
        open_already = self.windows.get(session.id)
        if open_already is not None and processes.is_running(*open_already):
            return True
        terminal = shutil.which("xterm")
        if terminal is None:
            return False
        try:
            account = self.parts.accounts.by_name(session.user)
        except UnknownUser:
            return False
        if account.uid != session.uid:
            return False
        # The daemon's own code and socket: the user's CLI must reach this daemon, as it is.
        code = str(Path(polydesk.__file__).resolve().parent.parent)
        title = self.parts.in_session(session, N_("Chat with the teacher"))
        argv = [terminal, "-title", title, "-geometry", "72x16", "-e", "env", f"PYTHONPATH={code}",
                sys.executable, "-m", "polydesk", "--socket", str(self.parts.settings.api_socket),
                "chat", session.id]
        pid = await self.parts.backend(session).launch(session, account, argv)
        self.windows[session.id] = (pid, processes.start_time(pid))
        return True

    # helpers

    def _allowed(self, caller: Caller, session_id: str, write: bool = False, op: str = "send") -> Session:
        session = self.parts.session_now(session_id)
        if session is None or not policy.may_see(caller, session):
            raise UnknownSession(session_id)
        decision = policy.may(caller, Action.CHAT, session)
        if not decision:
            if write:
                self._refuse(caller, session, op, decision.reason)
            raise NotPermitted(decision.reason)
        return session

    def _refuse(self, caller: Caller, session: Session, op: str, reason: str) -> None:
        self.parts.audit.one(caller, Action.CHAT, Outcome(session.id, Status.FORBIDDEN, session.user, reason),
                             allowed=False, reason=reason, detail={"op": op})
        raise NotPermitted(reason)

    def _count(self, session_id: str) -> None:
        """One more message from the session's user; RateLimited past the setting."""
        limit = self.parts.settings.chat_messages_per_minute
        if limit <= 0:
            return
        now = time.monotonic()
        sent = self.sent.setdefault(session_id, deque())
        while sent and now - sent[0] >= 60.0:
            sent.popleft()
        if len(sent) >= limit:
            wait = int(60.0 - (now - sent[0])) + 1
            raise RateLimited(f"too many chat messages: at most {limit} a minute; try again in {wait} s")
        sent.append(now)

    def _mark_read(self, caller: Caller, session_id: str, seq: int) -> None:
        with contextlib.suppress(StoreError):  # read or not, the answer stands
            self.parts.store.write((
                "INSERT INTO chat_read VALUES (?, ?, ?) ON CONFLICT (session_id, reader) "
                "DO UPDATE SET seq = max(seq, excluded.seq)", (session_id, caller.user, seq)))
