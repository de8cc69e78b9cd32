"""REST routes of the applications: launch or open on sessions, list one session's, close,
and the applications installed on the host (the Dashboard's picker) with their icons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from polydesk.core.apps import MAX_ARG, MAX_ARGS
from polydesk.core.texts import NOT_BLANK_PATTERN, TEXT_PATTERN
from polydesk.manager.manager import Manager
from polydesk.web.routes.api import _ONE_SELECTION, ERRORS, REFUSED, Results, Selection, Who, results


def _one_of(**kinds: str) -> dict[str, Any]:
    """Exactly one of these fields, not null (the manager's rule, said in the schema)."""
    return {"oneOf": [{"required": [name], "properties": {name: {"type": kind}}}
                      for name, kind in kinds.items()]}


_ONE_OF = _one_of(argv="array", app="string", url="string")
_PID_OR_NAME: dict[str, Any] = {"oneOf": [
    {"required": ["pid", "ids"], "properties": {
        "pid": {"type": "integer"}, "ids": {"minItems": 1, "maxItems": 1}, "name": {"type": "null"},
        "all": {"const": False}, "own": {"const": False}}},
    {"required": ["name"], "properties": {"name": {"type": "string"}, "pid": {"type": "null"}}},
]}
# What check_url takes: a known scheme, or an absolute path; one line.
_LINE = r"[^\x00-\x1f\x7f-\x9f]*"
URL_PATTERN = (r"^([Hh][Tt][Tt][Pp][Ss]?|[Ff][Tt][Pp]|[Mm][Aa][Ii][Ll][Tt][Oo]|[Ff][Ii][Ll][Ee]):" + _LINE
               + "$|^/" + _LINE + "$")
_Arg = Annotated[str, Field(max_length=MAX_ARG, json_schema_extra={"pattern": TEXT_PATTERN})]
DESKTOP_ID = r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,200}\.desktop$"


class LaunchRequest(Selection):
    """One of: ``argv`` (a program and its arguments, never a shell line), ``app`` (an installed
    application, by its .desktop file's name) or ``url`` (an address or absolute path, opened
    with the desktop's default handler, xdg-open)."""

    argv: list[_Arg] | None = Field(default=None, min_length=1, max_length=MAX_ARGS, json_schema_extra={
        "prefixItems": [{"type": "string", "minLength": 1, "pattern": NOT_BLANK_PATTERN}]})
    app: str | None = Field(default=None, pattern=DESKTOP_ID)
    url: str | None = Field(default=None, min_length=1, max_length=MAX_ARG,
                            json_schema_extra={"pattern": URL_PATTERN})

    model_config = {**Selection.model_config, "json_schema_extra": {
        "allOf": [_ONE_SELECTION, _ONE_OF]}}


class CloseRequest(Selection):
    """``pid`` (and ``start``, as the list gave them) in one session, or every application
    called ``name`` (its name or WM_CLASS) in the sessions."""

    pid: int | None = Field(default=None, ge=2, le=2**22)
    start: int | None = Field(default=None, ge=0, le=2**63 - 1)
    name: str | None = Field(default=None, min_length=1, max_length=200,
                             json_schema_extra={"pattern": NOT_BLANK_PATTERN})

    model_config = {**Selection.model_config, "json_schema_extra": {
        "allOf": [_ONE_SELECTION, _PID_OR_NAME]}}


class AppOut(BaseModel):
    window: int = Field(description="The X window id")
    title: str
    name: str = Field(description="The application's name: its .desktop Name, else its WM_CLASS")
    wm_class: str
    pid: int | None
    pid_source: str | None = Field(description=(
        '"server": the X server knows the client that made the window (X-Resource); '
        '"_NET_WM_PID": only what the window claims, which any client can forge; null: unknown'))
    start: int | None = Field(description="The process's start time (clock ticks since boot): "
                              "give it back to close, so a pid reused meanwhile is never hit")
    started_at: float | None = Field(description="The same start time, epoch seconds")


class InstalledOut(BaseModel):
    id: str = Field(description="The .desktop file's name")
    name: str
    icon: str | None = Field(description="The icon's URL, or null when it has none we can show")


def apps_router(manager: Manager) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.post("/sessions/launch", response_model=Results, responses=REFUSED,
                 summary="Launch a program or an installed application, or open an address, on sessions")
    async def launch(body: LaunchRequest, caller: Who) -> Results | JSONResponse:
        return results(await manager.launch(caller, body.target(), argv=body.argv, url=body.url,
                                             app=body.app))

    @router.get("/sessions/{session_id}/apps", response_model=list[AppOut],
                summary="The applications running in a session (its windows)")
    async def apps(session_id: str, caller: Who) -> list[AppOut]:
        return [AppOut(**vars(app)) for app in await manager.apps(caller, session_id)]

    @router.post("/sessions/close-app", response_model=Results, responses=REFUSED,
                 summary="Close an application: asked, then SIGTERM, then SIGKILL")
    async def close_app(body: CloseRequest, caller: Who) -> Results | JSONResponse:
        return results(await manager.close_app(caller, body.target(), pid=body.pid, start=body.start,
                                                name=body.name))

    @router.get("/apps", response_model=list[InstalledOut],
                summary="The applications installed on the host (their .desktop files)")
    async def installed(caller: Who) -> list[InstalledOut]:
        return [InstalledOut(id=e.id, name=e.name, icon=f"/api/v1/apps/{e.id}/icon" if e.icon else None)
                for e in manager.installed_apps()]

    @router.get("/apps/{app_id}/icon", response_class=Response,
                responses={200: {"content": {"image/png": {}}}}, summary="An installed application's icon")
    async def icon(app_id: Annotated[str, Path(pattern=DESKTOP_ID)], caller: Who) -> Response:
        png = manager.app_icon(app_id)
        if png is None:
            return JSONResponse({"error": {"code": "not-found", "message": f"{app_id} has no icon"}},
                                status_code=404)
        return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})

    return router
