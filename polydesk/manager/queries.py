"""What callers may read: sessions (with their idle times), a session's connections, the audit log."""

from __future__ import annotations

import asyncio
from typing import Any

from polydesk.core import policy
from polydesk.core.events import AuditRecord
from polydesk.core.model import Action, Caller, NotPermitted, Session, UnknownSession
from polydesk.manager.parts import Parts


async def list_sessions(parts: Parts, caller: Caller) -> list[Session]:
    visible = [s for s in parts.sessions_now() if policy.may_see(caller, s)]
    unknown = [s for s in visible if not parts.idle.asked(s.id)]
    if unknown:  # the first time only: ask the backends, all at once
        await asyncio.gather(*(parts.idle.seconds(s) for s in unknown))
    return [s.with_(idle_s=parts.idle.known(s)) for s in visible]


async def get_session(parts: Parts, caller: Caller, session_id: str) -> Session:
    session = parts.session_now(session_id)
    if session is None:
        raise UnknownSession(session_id)
    if not policy.may_see(caller, session):
        raise NotPermitted(f"session {session_id} belongs to another user")
    return session.with_(idle_s=await parts.idle.seconds(session))


def connections(parts: Parts, caller: Caller, session_id: str) -> list[dict[str, Any]]:
    """Who was attached to a session, from where and when: for whoever may view it."""
    session = parts.session_now(session_id)
    if session is None:
        raise UnknownSession(session_id)
    decision = policy.may(caller, Action.VIEW, session)
    if not decision:
        raise NotPermitted(decision.reason)
    return parts.store.connections(session_id)


def audit(parts: Parts, caller: Caller, limit: int = 100, since: int = 0) -> list[AuditRecord]:
    decision = policy.may_global(caller, Action.AUDIT)
    if not decision:
        parts.audit.write(caller, Action.AUDIT, [], [], allowed=False, reason=decision.reason)
        raise NotPermitted(decision.reason)
    return list(parts.store.audit(limit=limit, since_seq=since))
