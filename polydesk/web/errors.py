"""The one map of Polydesk's errors to HTTP statuses, and the JSON body every error answer has.

The REST API, the pages and the station bridge's refusals (before its WebSocket is accepted)
all answer ``{"error": {"code": ..., "message": ...}}`` with the status this map gives.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse

from polydesk.core.model import (
    BackendError,
    Conflict,
    InvalidRequest,
    NotPermitted,
    PolydeskError,
    RateLimited,
    StoreError,
    UnknownHost,
    UnknownName,
    UnknownSession,
    UnknownToken,
    UnknownUser,
)
from polydesk.fleet.desk import HostUnreachable
from polydesk.web.signin import TooManyAttempts

STATUS: dict[type[PolydeskError], int] = {
    UnknownSession: 404,
    UnknownUser: 404,
    UnknownToken: 404,
    UnknownHost: 404,
    UnknownName: 404,
    NotPermitted: 403,
    InvalidRequest: 400,
    Conflict: 409,
    BackendError: 502,
    HostUnreachable: 502,  # another host of the fleet could not be asked: as a backend that failed
    StoreError: 503,
    TooManyAttempts: 429,
    RateLimited: 429,
}


def status_of(exc: PolydeskError) -> int:
    """The HTTP status of ``exc``: its class's, or its nearest base class's; 500 for none."""
    return next((status for kind, status in STATUS.items() if isinstance(exc, kind)), 500)


def error_response(status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)
