"""Recovery: rebuild the sessions of a lost or damaged database from what the backends find.

``polydesk serve --recover`` (before start): each backend lists the sessions it still runs;
those the store does not know are recorded again, disconnected, with their owners' roles.
"""

from __future__ import annotations

import logging

from polydesk.core.model import SYSTEM, Action, Outcome, PolydeskError, Session, SessionState, Status
from polydesk.manager.parts import Parts

log = logging.getLogger(__name__)


async def recover(parts: Parts) -> list[str]:
    """Rebuild the state of sessions the store does not know (a lost or damaged database)
    from what the backends find running. Call before start(). Returns the recovered ids."""
    known = {s.id for s in parts.store.sessions()}
    recovered = []
    for backend in parts.backends.values():
        for found in await backend.recover():
            if found.session_id in known:
                continue
            try:
                account = parts.lookup(found.user)
            except PolydeskError as exc:
                log.warning("session %s of %s not recovered: %s", found.session_id, found.user, exc)
                continue
            if found.session_id.isdigit():
                parts.store.reserve_ids(int(found.session_id))
            parts.store.put_session(Session(
                id=found.session_id, user=account.name, uid=account.uid,
                role=parts.role_of(account.groups, account.uid), backend=backend.name,
                state=SessionState.DISCONNECTED, logon_time=found.logon_time,
                display=found.started.display, backend_data=found.started.data,
            ))
            recovered.append(found.session_id)
    outcomes = [Outcome(i, Status.RESUMED, None, "recovered from the backend") for i in recovered]
    parts.audit.outcomes(SYSTEM, Action.LOGON, outcomes, detail={"recover": True})
    return recovered
