"""What holds people back at the sign-in page, for administrators to see and clear (issue 14.7).

The limiter (signin.FailureLimiter) slows guessing per account and client, per address and
server-wide. A real user can still be caught by it (a classmate guessed their password from
the same PC), so administrators list the counters and clear them: ``GET /api/v1/signin/holds``,
``POST /api/v1/signin/unlock``, ``polydesk signin holds|unlock`` and the Dashboard's
"Log-on holds" page. Administrators only; every clear, and every refusal, is audited.
"""

from __future__ import annotations

import time
from dataclasses import asdict

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from polydesk.core.model import Caller
from polydesk.core.texts import NAME_PATTERN
from polydesk.manager.manager import Manager
from polydesk.web.routes.api import ERRORS, Who
from polydesk.web.signin import FailureLimiter, Hold


class HoldsDesk:
    """The limiter's counters behind the roles and the audit log (the manager's holds use cases)."""

    def __init__(self, manager: Manager, limiter: FailureLimiter) -> None:
        self.manager = manager
        self.limiter = limiter

    def holds(self, caller: Caller) -> list[Hold]:
        return self.manager.signin_holds(caller, self.limiter)

    def unlock(self, caller: Caller, user: str | None = None, address: str | None = None,
               everything: bool = False) -> int:
        """Clear the counters: a user's (from anywhere, or at one address), an address's, or all."""
        return self.manager.signin_unlock(caller, self.limiter, user, address, everything)


class HoldOut(BaseModel):
    kind: str = Field(description="account (one account from one client), address or server")
    user: str | None
    client: str | None = Field(description="an address, or 'browser ID' for a device cookie")
    failures: int
    until: float = Field(description="attempts wait until then (epoch seconds); past: counting, not held")
    held: bool
    last: float


class UnlockRequest(BaseModel):
    # Whose holds: a user's, an address's, or all; the document says so, as the desk checks.
    model_config = ConfigDict(extra="forbid", json_schema_extra={"anyOf": [
        {"required": ["user"], "properties": {"user": {"type": "string", "pattern": NAME_PATTERN}}},
        {"required": ["address"], "properties": {"address": {"type": "string",
                                                             "pattern": NAME_PATTERN}}},
        {"required": ["all"], "properties": {"all": {"const": True}}},
    ]})
    user: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    address: str | None = Field(default=None, min_length=1, max_length=64, pattern=NAME_PATTERN)
    all: StrictBool = False


class UnlockOut(BaseModel):
    cleared: int


def hold_out(hold: Hold, now: float) -> HoldOut:
    return HoldOut(**asdict(hold), held=hold.until > now)


def holds_router(desk: HoldsDesk) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.get("/signin/holds", response_model=list[HoldOut],
                summary="Failed log-on counters that hold people back (administrators)")
    async def list_holds(caller: Who) -> list[HoldOut]:
        now = time.time()
        return [hold_out(h, now) for h in desk.holds(caller)]

    @router.post("/signin/unlock", response_model=UnlockOut,
                 summary="Clear failed log-on counters: a user's, an address's, or all (administrators)")
    async def unlock(body: UnlockRequest, caller: Who) -> UnlockOut:
        return UnlockOut(cleared=desk.unlock(caller, body.user, body.address, body.all))

    return router
