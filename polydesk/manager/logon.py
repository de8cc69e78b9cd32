"""Logon: start a user's desktop session, or resume the one running."""

from __future__ import annotations

import time

from polydesk.core import policy
from polydesk.core.events import session_started
from polydesk.core.i18n import normalize
from polydesk.core.model import (
    Action,
    BackendError,
    Caller,
    NotPermitted,
    Outcome,
    Session,
    SessionState,
    Status,
)
from polydesk.core.texts import check_text
from polydesk.manager.parts import Parts
from polydesk.manager.watch import Watch


async def logon(parts: Parts, watch: Watch, caller: Caller, user: str,
                language: str | None = None) -> tuple[Session, bool]:
    """Start ``user``'s session, or resume the running one. Returns (session, resumed).

    ``language``: what the caller's browser asked for (Accept-Language). It becomes the
    session's language only when the caller is the user at their own station: an
    administrator starting someone's session does not choose the words shown in it."""
    check_text("user", user, max_length=64, required=True)
    decision = policy.may_logon(caller, user)
    if not decision:
        parts.audit.write(caller, Action.LOGON, [], [], allowed=False, reason=decision.reason,
                          detail={"user": user})
        raise NotPermitted(decision.reason)
    account = parts.lookup(user)
    decision = parts.may_have_desktop(account.name, account.uid, account.shell)
    if not decision:
        parts.audit.write(caller, Action.LOGON, [], [], allowed=False, reason=decision.reason,
                          detail={"user": account.name, "uid": account.uid, "shell": account.shell})
        raise NotPermitted(decision.reason)
    parts.store.ensure_space()
    asked = normalize(language) if language and caller.user == account.name else None
    default = parts.default_backend
    async with parts.lock(f"user:{account.name}"):
        # Only the default backend's sessions resume: a desktop on a seat or an SSH login
        # (logind) is not one a browser station can take over.
        existing = [s for s in parts.store.sessions()
                    if s.uid == account.uid and s.state != SessionState.LOGGING_OFF
                    and s.backend == default.name]
        if existing and not parts.settings.allow_multiple_sessions:
            session = parts.set(existing[0].with_(state=SessionState.ACTIVE,
                                                  language=asked or existing[0].language))
            parts.audit.one(caller, Action.LOGON, Outcome(session.id, Status.RESUMED, user),
                            detail={"user": user, "resumed": True})
            return session, True
        session_id = parts.store.new_session_id()
        try:
            started = await default.start(session_id, account)
        except BackendError as exc:
            parts.audit.one(caller, Action.LOGON, Outcome(session_id, Status.FAILED, user, str(exc)),
                            detail={"user": user})
            raise
        session = Session(
            id=session_id, user=account.name, uid=account.uid,
            role=parts.role_of(account.groups, account.uid),
            backend=default.name, state=SessionState.ACTIVE, logon_time=time.time(),
            display=started.display, backend_data=started.data, language=asked,
        )
        session = parts.store.put_session(session)
        watch.watch(session)
        parts.bus.publish(session_started(session))
        parts.audit.one(caller, Action.LOGON, Outcome(session_id, Status.STARTED, user),
                        detail={"user": user, "resumed": False})
        return session, False
