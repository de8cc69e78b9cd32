"""REST API /api/v1: every route is a thin call into the manager's use cases."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from polydesk.config.fleet import HOST_NAME
from polydesk.core import i18n
from polydesk.core.events import public_session
from polydesk.core.model import Caller, InvalidRequest, Outcome, Status, Target
from polydesk.core.texts import MAX_TEXT, NOT_BLANK_PATTERN, TEXT_PATTERN
from polydesk.manager.manager import Manager

# Exactly one of the three ways to choose sessions, said in the schema so that a client
# (or a fuzzer) can tell a valid selection from the document alone.
# And "fleet" and "host" (fleet mode) go with "all" only: ids name their host themselves.
_ONE_SELECTION: dict[str, Any] = {
    "oneOf": [
        {"required": ["ids"], "properties": {"ids": {"minItems": 1}}},
        {"required": ["all"], "properties": {"all": {"const": True}}},
        {"required": ["own"], "properties": {"own": {"const": True}}},
    ],
    "anyOf": [
        {"required": ["all"], "properties": {"all": {"const": True}}},
        {"properties": {"fleet": {"const": False}, "host": {"type": "null"}}},
    ],
}


# An HTTP answer should not hang for a whole grace period (proxies give up); a client
# that wants the end polls the sessions still logging off, as the CLI does.
LOGOFF_WAIT_LIMIT_S = 10.0


class Selection(BaseModel):
    """Which sessions: ``ids``, ``all`` (everyone the caller may act on but the caller), or ``own``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_ONE_SELECTION)
    ids: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(default=[], max_length=1000)
    all: StrictBool = False
    own: StrictBool = False
    # Fleet mode, with "all": every host of the fleet, or one host (which "host" narrows "fleet" to).
    fleet: StrictBool = False
    host: str | None = Field(default=None, pattern=HOST_NAME.pattern)

    def target(self) -> Target:
        chosen = sum((bool(self.ids), self.all, self.own))
        if chosen == 0:
            raise InvalidRequest('empty selection: give "ids", "all": true or "own": true')
        if chosen > 1:
            raise InvalidRequest('give only one of "ids", "all" and "own"')
        if (self.fleet or self.host) and not self.all:
            raise InvalidRequest('"fleet" and "host" go with "all": true (ids say their host: host/id)')
        return Target(ids=tuple(self.ids), all=self.all, scope=self.host or ("*" if self.fleet else None))


# Text fields: the manager checks them (texts.check_text, a 400 naming the field); the
# schema only states the same rule, so that a client (or schemathesis) can tell from it.
def _text(**kwargs: Any) -> Any:
    return Field(max_length=MAX_TEXT, json_schema_extra={"pattern": TEXT_PATTERN}, **kwargs)


class LogoffRequest(Selection):
    grace: int | None = Field(default=None, ge=0, le=3600)
    force: StrictBool = False
    message: str | None = _text(default=None)
    what_if: StrictBool = False
    wait: StrictBool = True


class BlockRequest(Selection):
    message: str | None = _text(default=None)


class MessageRequest(Selection):
    # Something that is not blank, by Python's str.strip() (the manager's test); see texts.py.
    text: str = Field(min_length=1, max_length=MAX_TEXT, json_schema_extra={"pattern": NOT_BLANK_PATTERN})
    time: int | None = Field(default=None, ge=1, le=86400)


class LogonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1, max_length=64, json_schema_extra={"pattern": TEXT_PATTERN})


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorOut, "description": description}
    for status, description in (
        (400, "Malformed request: the message says which field and why"),
        (401, "Not signed in: use the Unix socket, a bearer token or the log-on page"),
        (403, "Not permitted (or a missing or wrong CSRF token)"),
        (404, "No such session, user or token: the message names it"),
        (409, "The sessions' present state does not allow it (the message says why)"),
        (413, "Request body too large (setting max_request_body)"),
        (429, "Too many failed log-ons, or chat messages too fast (the message says when to retry)"),
        (502, "The session backend could not do it"),
        (503, "The state directory cannot be written (for example, it is full)"),
    )
}


class Result(BaseModel):
    id: str
    status: str
    ok: bool
    user: str | None
    reason: str | None


class Results(BaseModel):
    results: list[Result]
    succeeded: int
    failed: int


class ProjectionOut(BaseModel):
    source: str
    source_user: str
    by: str
    since: float


class SessionOut(BaseModel):
    id: str
    user: str
    uid: int
    role: Literal["standard", "dashboard", "admin"]
    backend: str = Field(description='Where the session runs: "xvnc" (Polydesk\'s own), "logind" '
                         '(the machine\'s seats, display manager, SSH) or "fake" (tests)')
    host: str = Field(deprecated=True, description='The same as "backend", under its name before 0.2')
    state: Literal["active", "disconnected", "logging-off", "ended"]
    blocked: bool
    block_message: str | None
    block_undone: int = Field(0, description=(
        "While blocked: how many times something inside the session undid the block (turned "
        "input back on, closed the cover) and the daemon put it back"))
    display: str | None
    logon_time: float
    idle_s: float | None
    client: str | None
    station: str | None = Field(None, description=(
        "The name of the station the user is at: a browser station's, or the logind seat"))
    logoff_deadline: float | None
    projection: ProjectionOut | None = Field(None, description=(
        "While the session's own station is shown another session's screen (a projection): "
        "whose, and who projects it"))
    version: int = Field(0, description=(
        "One more on every change of the session: of two updates, the higher version is the newer"))
    details: dict[str, Any] = Field(default_factory=dict, description=(
        "What the session's backend shows of it: for logind sessions logind_id, seat, tty, "
        "type (x11, wayland, tty), class, remote, remote_host, service"))
    web_limit: dict[str, Any] | None = Field(None, description=(
        'Its web limit: {"mode": "allow" | "block", "sites": [...]} (docs/web-limits.md); null: none'))
    hand_raised_at: float | None = Field(None, description=(
        "When its user raised their hand to ask for help (docs/chat.md); null: the hand is down"))
    own: bool


class LogonOut(BaseModel):
    session: SessionOut
    resumed: bool


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str | None = Field(default=None, min_length=1, max_length=64,
                             json_schema_extra={"pattern": TEXT_PATTERN})
    note: str = Field(default="", max_length=200, json_schema_extra={"pattern": TEXT_PATTERN})


class TokenOut(BaseModel):
    id: str
    user: str
    token: str


class TokenInfo(BaseModel):
    id: str
    user: str
    created: float
    created_by: str
    note: str


def results(outcomes: list[Outcome]) -> Results | JSONResponse:
    """One result per session; 403 (with the same results) when every target was refused."""
    rows = [Result(id=o.id, status=str(o.status), ok=o.ok, user=o.user, reason=o.reason)
            for o in outcomes]
    ok = sum(r.ok for r in rows)
    answer = Results(results=rows, succeeded=ok, failed=len(rows) - ok)
    if outcomes and all(o.status == Status.FORBIDDEN for o in outcomes):
        reasons = "; ".join(dict.fromkeys(o.reason or "not permitted" for o in outcomes))
        return JSONResponse({"error": {"code": "not-permitted", "message": reasons},
                             **answer.model_dump()}, status_code=403)
    return answer


def session_out(session: Any, caller: Caller) -> SessionOut:
    return SessionOut(**public_session(session), own=session.uid == caller.uid)


def current_caller(request: Request) -> Caller:
    """Who calls; a web (cookie) caller must also send the CSRF token on state-changing requests."""
    caller: Caller = request.app.state.auth.require(request, request.method)
    return caller


Who = Annotated[Caller, Depends(current_caller)]


class Desk(Protocol):
    """Where the session actions go: the Manager, or in fleet mode fleet_desk.FleetDesk."""

    async def logoff(self, caller: Caller, target: Target, *, grace: int | None = None,
                     force: bool = False, message: str | None = None, what_if: bool = False,
                     wait: bool = True, wait_limit: float | None = None) -> list[Outcome]: ...

    async def disconnect(self, caller: Caller, target: Target) -> list[Outcome]: ...

    async def block(self, caller: Caller, target: Target, message: str | None = None) -> list[Outcome]: ...

    async def unblock(self, caller: Caller, target: Target) -> list[Outcome]: ...

    async def message(self, caller: Caller, target: Target, text: str,
                      timeout: int | None = None) -> list[Outcome]: ...
REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"description": "every target was refused (the results say why)"}}


def api_router(manager: Manager, desk: Desk | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)
    sessions_desk: Desk = desk or manager

    @router.get("/sessions", response_model=list[SessionOut], summary="List the sessions you may see")
    async def list_sessions(caller: Who) -> list[SessionOut]:
        return [session_out(s, caller) for s in await manager.list_sessions(caller)]

    @router.get("/sessions/{session_id}", response_model=SessionOut, summary="One session")
    async def get_session(session_id: str, caller: Who) -> SessionOut:
        return session_out(await manager.get_session(caller, session_id), caller)

    @router.post("/sessions", response_model=LogonOut, summary="Log on: start or resume a session")
    async def logon(body: LogonRequest, caller: Who, request: Request) -> LogonOut:
        # A station starting or resuming its own session: what appears in it speaks the
        # language its browser asks for (Accept-Language), kept with the session.
        asked = i18n.asked_language(request.headers.get("accept-language", ""))
        session, resumed = await manager.logon(caller, body.user, language=asked)
        return LogonOut(session=session_out(session, caller), resumed=resumed)

    @router.post("/sessions/logoff", response_model=Results, responses=REFUSED,
                 summary="Log off sessions")
    async def logoff(body: LogoffRequest, caller: Who) -> Results | JSONResponse:
        return results(await sessions_desk.logoff(
            caller, body.target(), grace=body.grace, force=body.force, message=body.message,
            what_if=body.what_if, wait=body.wait, wait_limit=LOGOFF_WAIT_LIMIT_S,
        ))

    @router.post("/sessions/logoff/cancel", response_model=Results, responses=REFUSED,
                 summary="Cancel log-offs still in their grace period")
    async def cancel_logoff(body: Selection, caller: Who) -> Results | JSONResponse:
        return results(await manager.cancel_logoff(caller, body.target()))

    @router.post("/sessions/disconnect", response_model=Results, responses=REFUSED,
                 summary="Disconnect sessions")
    async def disconnect(body: Selection, caller: Who) -> Results | JSONResponse:
        return results(await sessions_desk.disconnect(caller, body.target()))

    @router.post("/sessions/block", response_model=Results, responses=REFUSED,
                 summary="Block sessions with a message")
    async def block(body: BlockRequest, caller: Who) -> Results | JSONResponse:
        return results(await sessions_desk.block(caller, body.target(), body.message))

    @router.post("/sessions/unblock", response_model=Results, responses=REFUSED,
                 summary="Unblock sessions")
    async def unblock(body: Selection, caller: Who) -> Results | JSONResponse:
        return results(await sessions_desk.unblock(caller, body.target()))

    @router.post("/sessions/message", response_model=Results, responses=REFUSED,
                 summary="Show a message on sessions")
    async def message(body: MessageRequest, caller: Who) -> Results | JSONResponse:
        return results(await sessions_desk.message(caller, body.target(), body.text, body.time))

    @router.get("/audit", summary="The audit log (administrators)")
    async def audit(
        caller: Who,
        limit: Annotated[int, Query(ge=1, le=10000)] = 100,
        since: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    ) -> list[dict[str, Any]]:
        return [record.to_json() for record in manager.audit(caller, limit=limit, since=since)]

    @router.post("/tokens", response_model=TokenOut, summary="Make an API token (administrators)")
    async def create_token(body: TokenRequest, caller: Who) -> TokenOut:
        token_id, token = manager.create_token(caller, body.user, body.note)
        user = body.user or caller.user
        return TokenOut(id=token_id, user=user, token=token)

    @router.get("/tokens", response_model=list[TokenInfo], summary="API tokens (administrators)")
    async def list_tokens(caller: Who) -> list[TokenInfo]:
        return [TokenInfo(**row) for row in manager.tokens(caller)]

    @router.delete("/tokens/{token_id}", status_code=204, summary="Revoke an API token (administrators)")
    async def revoke_token(token_id: str, caller: Who) -> None:
        manager.revoke_token(caller, token_id)

    @router.get("/whoami", summary="Who the daemon thinks you are")
    async def whoami(caller: Who) -> dict[str, Any]:
        return {"user": caller.user, "uid": caller.uid, "role": str(caller.role), "via": caller.via}

    return router
