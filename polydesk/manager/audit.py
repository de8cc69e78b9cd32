"""The audit log's one writer: every record of the append-only log is written here.

The manager's use cases write through it (and so do the fleet's records of what this host
asked other hosts, and of requests it refused, through the manager's methods): the shape
of a record is decided once, and nothing outside the manager appends to the log.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from polydesk.core.events import AuditRecord
from polydesk.core.model import Action, Caller, Outcome, Status, StoreError
from polydesk.store.store import Store


def result(outcome: Outcome) -> dict[str, Any]:
    """An Outcome as the audit log (and the fleet's wire) keeps it."""
    return {"id": outcome.id, "status": str(outcome.status), "user": outcome.user,
            "reason": outcome.reason}


class AuditLog:
    def __init__(self, store: Store) -> None:
        self.store = store

    def write(
        self,
        caller: Caller,
        action: Action | str,
        targets: list[str],
        results: list[dict[str, Any]],
        *,
        allowed: bool = True,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        detail = dict(detail or {})
        if reason:
            detail["reason"] = reason
        self.store.append_audit(AuditRecord(
            time=time.time(), caller=caller.user, caller_uid=caller.uid, role=str(caller.role),
            via=caller.via, action=str(action), targets=targets, allowed=allowed,
            results=results, detail=detail,
        ))

    def outcomes(self, caller: Caller, action: Action, outcomes: Sequence[Outcome], *,
                 detail: dict[str, Any] | None = None) -> None:
        """A record of one action over sessions: refused when any of them was forbidden."""
        self.write(caller, action, [o.id for o in outcomes], [result(o) for o in outcomes],
                   allowed=all(o.status != Status.FORBIDDEN for o in outcomes), detail=detail)

    def one(self, caller: Caller, action: Action, outcome: Outcome, *, allowed: bool = True,
            reason: str | None = None, detail: dict[str, Any] | None = None) -> None:
        """A record of one action on one session."""
        self.write(caller, action, [outcome.id], [result(outcome)], allowed=allowed, reason=reason,
                   detail=detail)

    def forwarded(self, caller: Caller, action: Action, outcomes: Sequence[Outcome],
                  detail: dict[str, Any]) -> None:
        """The fleet: this host's record of what it asked other hosts (they record what they did)."""
        with contextlib.suppress(StoreError):  # done is done: a full disk must not make it an error
            self.write(caller, action, [o.id for o in outcomes], [result(o) for o in outcomes],
                       allowed=not outcomes or any(o.status != Status.FORBIDDEN for o in outcomes),
                       detail=detail)

    def refused_request(self, claimed_user: str, via: str, action: str, targets: list[str],
                        reason: str, subject: str) -> None:
        """The fleet: a request refused before anyone was known to ask it (forged, unsigned,
        replayed). The record keeps who it claimed to be, with no uid and no role."""
        with contextlib.suppress(StoreError):
            self.store.append_audit(AuditRecord(
                time=time.time(), caller=claimed_user, caller_uid=-1, role="", via=via, action=action,
                targets=targets, allowed=False, results=[],
                detail={"reason": f"fleet request refused: {reason}", "subject": subject},
            ))
