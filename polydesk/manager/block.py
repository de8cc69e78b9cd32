"""Block and unblock: cover a session's screen and stop its input, then give them back.

Whatever undoes a block afterwards, or a block that fails half-way, the block guard
(blockguard.py) puts back as the store says.
"""

from __future__ import annotations

from polydesk.core.model import Action, Caller, Outcome, Session, Status, Target
from polydesk.core.texts import check_text
from polydesk.manager.blockguard import BlockGuard
from polydesk.manager.each import each
from polydesk.manager.parts import Parts


class Blocks:
    def __init__(self, parts: Parts, guard: BlockGuard) -> None:
        self.parts = parts
        self.guard = guard

    async def block(self, caller: Caller, target: Target, message: str | None = None) -> list[Outcome]:
        typed = check_text("message", message)
        settings = self.parts.settings
        check_text("message", settings.block_message)  # the default too: from the configuration

        async def act(session: Session) -> Outcome:
            text = typed or self.parts.in_session(session, settings.block_message)
            backend = self.parts.backend(session)
            try:
                await backend.block(session, text)
                self.parts.set(session.with_(blocked=True, block_message=text, block_undone=0))
            except Exception as exc:
                await self.guard.restore_cover(backend, session, exc)
                raise
            return Outcome(session.id, Status.BLOCKED, session.user)

        return await each(self.parts, caller, Action.BLOCK, target, act,
                          {"message": typed or settings.block_message})

    async def unblock(self, caller: Caller, target: Target) -> list[Outcome]:
        async def act(session: Session) -> Outcome:
            backend = self.parts.backend(session)
            try:
                await backend.unblock(session)
                self.parts.set(session.with_(blocked=False, block_message=None, block_undone=0))
            except Exception as exc:
                await self.guard.restore_cover(backend, session, exc)
                raise
            return Outcome(session.id, Status.UNBLOCKED, session.user)

        return await each(self.parts, caller, Action.UNBLOCK, target, act, {})
