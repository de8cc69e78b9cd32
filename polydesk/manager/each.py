"""The shape every action on sessions shares: resolve the target, check each session against
the roles, act on each under its lock, one Outcome per session, one audit record."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from polydesk.core import policy
from polydesk.core.model import (
    Action,
    Caller,
    Outcome,
    PolydeskError,
    Session,
    SessionState,
    Status,
    Target,
    UnknownHost,
)
from polydesk.manager.parts import Parts
from polydesk.store.store import Priority, essential

log = logging.getLogger(__name__)

# Actions that take power away from a user: they still work on a full state directory
# (their record uses the store's reserve), so a student who fills the disk cannot stop them.
TAKES_POWER = frozenset({Action.BLOCK, Action.LOGOFF, Action.DISCONNECT})

Act = Callable[[Session], Awaitable[Outcome]]


async def each(
    parts: Parts,
    caller: Caller,
    action: Action,
    target: Target,
    act: Act,
    detail: dict[str, Any],
    allow_logging_off: bool = False,
) -> list[Outcome]:
    # Refuse before acting, not after, when the disk is full; what takes power away
    # still works (its records may spend the whole reserve), tiny records its upper half.
    takes_power = action in TAKES_POWER
    parts.store.ensure_space(Priority.ESSENTIAL if takes_power else Priority.SMALL)

    async def run(item: Session | Outcome) -> Outcome:
        if isinstance(item, Outcome):
            return item
        if item.state == SessionState.LOGGING_OFF and not allow_logging_off:
            return Outcome(item.id, Status.FAILED, item.user, "the session is logging off")
        try:
            async with parts.lock(item.id):
                current = parts.store.session(item.id)
                if current is None:
                    return Outcome(item.id, Status.UNKNOWN, item.user, "the session has ended")
                return await act(current)
        except PolydeskError as exc:  # the backend, or the store (a full disk past its reserve)
            return Outcome(item.id, Status.FAILED, item.user, str(exc))
        except Exception as exc:  # a bug at a backend's edge: this session's result says so
            log.exception("%s of session %s failed", action, item.id)
            return Outcome(item.id, Status.FAILED, item.user, f"internal error: {exc!r}")

    with essential() if takes_power else contextlib.nullcontext():  # the log-off tasks too
        resolved = resolve(parts, caller, action, target)
        outcomes = list(await asyncio.gather(*(run(item) for item in resolved)))
        parts.audit.outcomes(caller, action, outcomes, detail=detail)
    return outcomes


def whole(value: object) -> bool:
    """A whole number, as JSON from the fleet or a form may fail to give (bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def resolve(parts: Parts, caller: Caller, action: Action, target: Target) -> list[Session | Outcome]:
    """The sessions a request is about; refusals and unknown ids as ready Outcomes."""
    if target.scope is not None:  # fleet.FleetDesk takes those apart before they come here
        raise UnknownHost(target.scope, "fleet mode is off on this host (no [fleet] in its config)")
    sessions = parts.sessions_now()
    if target.all:
        return [s for s in sessions
                if not policy.owns(caller, s) and policy.may(caller, action, s)]
    if target.own:
        own = [s for s in sessions if policy.owns(caller, s)]
        if not own:
            return [Outcome("", Status.UNKNOWN, caller.user, "you have no session")]
        return [s if policy.may(caller, action, s)
                else Outcome(s.id, Status.FORBIDDEN, s.user, policy.may(caller, action, s).reason)
                for s in own]
    by_id = {s.id: s for s in sessions}
    resolved: list[Session | Outcome] = []
    for session_id in dict.fromkeys(target.ids):
        session = by_id.get(session_id)
        if session is None:
            resolved.append(Outcome(session_id, Status.UNKNOWN, None,
                                    f"no session with id {session_id!r}"))
            continue
        decision = policy.may(caller, action, session)
        resolved.append(session if decision
                        else Outcome(session_id, Status.FORBIDDEN, session.user, decision.reason))
    return resolved
