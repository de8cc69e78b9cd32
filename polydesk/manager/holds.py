"""What holds people back at the log-on page, for administrators to see and clear (issue 14.7).

The web sign-in's limiter (web/signin.FailureLimiter) slows guessing per account and client,
per address and server-wide. A real user can still be caught by it (a classmate guessed their
password from the same PC), so administrators list the counters and clear them. Administrators
only; every clear, and every refusal, is audited (action ``signin``). The limiter is the web's:
it comes in by argument, as anything with ``holds`` and ``clear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from polydesk.core import policy
from polydesk.core.model import Action, Caller, InvalidRequest, NotPermitted
from polydesk.core.texts import check_text
from polydesk.manager.audit import AuditLog

H = TypeVar("H")
H_co = TypeVar("H_co", covariant=True)


class HoldKeeper(Protocol[H_co]):
    def holds(self) -> Sequence[H_co]: ...

    def clear(self, user: str | None = None, address: str | None = None, everything: bool = False) -> int: ...


def holds(audit: AuditLog, caller: Caller, keeper: HoldKeeper[H]) -> list[H]:
    _allowed(audit, caller, {"op": "holds"})
    return list(keeper.holds())


def unlock(audit: AuditLog, caller: Caller, keeper: HoldKeeper[object], user: str | None = None,
           address: str | None = None, everything: bool = False) -> int:
    """Clear the counters: a user's (from anywhere, or at one address), an address's, or all."""
    detail: dict[str, object] = {"op": "unlock", "user": user, "address": address, "all": everything}
    _allowed(audit, caller, detail)
    check_text("user", user, max_length=64)
    check_text("address", address, max_length=64)
    if not (user or address or everything):
        raise InvalidRequest("say whose holds to clear: a user, an address, or all")
    cleared = keeper.clear(user or None, address or None, everything)
    audit.write(caller, Action.SIGNIN, [], [], detail={**detail, "cleared": cleared})
    return cleared


def _allowed(audit: AuditLog, caller: Caller, detail: dict[str, object]) -> None:
    decision = policy.may_global(caller, Action.SIGNIN)
    if not decision:
        audit.write(caller, Action.SIGNIN, [], [], allowed=False,
                    detail={**detail, "reason": decision.reason})
        raise NotPermitted(decision.reason)
