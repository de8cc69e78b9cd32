"""Cancel log-off: stop log-offs still in their grace period and put the sessions back.

A log-off waits its grace period in a task of the manager's (Manager._begin_logoff), with its
plan stored in the session so that a restart finishes it. Cancelling stops that task, stores
the session as it was before (its plan remembers active or disconnected) without a plan, and
takes the countdown away from the user's screen. Checked by the roles (policy: whoever may
log the session off, except that nobody undoes someone else's log-off of their own session
unless an administrator) and audited like every action on sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from polydesk.core import policy
from polydesk.core.model import Action, BackendError, Caller, Outcome, Session, SessionState, Status, Target

if TYPE_CHECKING:
    from polydesk.manager.manager import Manager


async def cancel(manager: Manager, caller: Caller, target: Target) -> list[Outcome]:
    """One Outcome per session: logoff-cancelled, or why not (not logging off, too late)."""

    async def act(session: Session) -> Outcome:
        plan = session.logoff
        if session.state != SessionState.LOGGING_OFF or plan is None:
            return Outcome(session.id, Status.FAILED, session.user, "the session is not logging off")
        if plan.force or time.time() >= plan.deadline:
            # its windows are being closed: what a cancel put back would be half a desktop
            return Outcome(session.id, Status.FAILED, session.user,
                           "too late: the grace period is over and the session is closing")
        task = manager._logoffs.pop(session.id, None)
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)  # its steps are over before we go on
        manager._set(session.with_(state=manager.state_without_logoff(session), logoff=None))
        with contextlib.suppress(BackendError):  # a notice left behind closes itself at zero
            await manager._backend(session).withdraw_logoff_notice(session)
        return Outcome(session.id, Status.LOGOFF_CANCELLED, session.user)

    if target.all and target.scope is None:
        # "all" is every session logging off that the caller may put back, never their own:
        # the others are not news, and would each be a failure in the results
        target = Target(ids=tuple(
            s.id for s in manager.store.sessions()
            if s.state == SessionState.LOGGING_OFF and not policy.owns(caller, s)
            and policy.may(caller, Action.CANCEL_LOGOFF, s)))
        if not target.ids:
            return []
    return await manager._each(caller, Action.CANCEL_LOGOFF, target, act, {}, allow_logging_off=True)
