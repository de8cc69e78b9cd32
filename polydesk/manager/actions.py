"""Disconnect and message: actions that leave the session running as it is."""

from __future__ import annotations

from polydesk.core import policy
from polydesk.core.model import Action, Caller, InvalidRequest, Outcome, Session, SessionState, Status, Target
from polydesk.core.texts import check_text
from polydesk.manager.each import each, whole
from polydesk.manager.parts import Parts
from polydesk.manager.stations import DISCONNECTED


async def disconnect(parts: Parts, caller: Caller, target: Target) -> list[Outcome]:
    async def act(session: Session) -> Outcome:
        if not policy.owns(caller, session):  # their own Disconnect is their choice to stay signed in
            parts.end_signins(caller, session.id, session.user, DISCONNECTED)
        parts.stations.close_all(session.id, DISCONNECTED)
        await parts.backend(session).disconnect(session)
        parts.set(session.with_(state=SessionState.DISCONNECTED, client=None, station=None))
        return Outcome(session.id, Status.DISCONNECTED, session.user)

    return await each(parts, caller, Action.DISCONNECT, target, act, {})


async def message(parts: Parts, caller: Caller, target: Target, text: str,
                  timeout: int | None = None) -> list[Outcome]:
    check_text("text", text, required=True)
    if timeout is not None and not (whole(timeout) and timeout > 0):
        raise InvalidRequest("time: must be a positive number of seconds")

    async def act(session: Session) -> Outcome:
        await parts.backend(session).message(session, text, timeout)
        return Outcome(session.id, Status.SHOWN, session.user)

    return await each(parts, caller, Action.MESSAGE, target, act, {"text": text, "time": timeout})
