"""REST: project a session's screen to other sessions' stations, and stop (manager/projection.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from polydesk.core.model import InvalidRequest, Target
from polydesk.manager.manager import Manager
from polydesk.web.routes.api import ERRORS, REFUSED, Results, Who, results

SessionId = Annotated[str, Field(min_length=1, max_length=128,
                                 description="a session of this host (a projection stays on one host)")]


class ProjectRequest(BaseModel):
    """Show ``source`` (none: your own session) at the stations of ``ids`` or of ``all``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"oneOf": [
        {"required": ["ids"], "properties": {"ids": {"minItems": 1}}},
        {"required": ["all"], "properties": {"all": {"const": True}}},
    ]})
    source: SessionId | None = None
    ids: list[SessionId] = Field(default=[], max_length=1000)
    all: StrictBool = False
    what_if: StrictBool = False

    def target(self) -> Target:
        if bool(self.ids) == self.all:
            raise InvalidRequest('give the target sessions: "ids" or "all": true (not both)')
        return Target(ids=tuple(self.ids), all=self.all)


class StopRequest(BaseModel):
    """Stop what ``source`` projects (none: every projection you may stop), or only at ``ids``."""

    model_config = ConfigDict(extra="forbid")
    source: SessionId | None = None
    ids: list[SessionId] = Field(default=[], max_length=1000)
    what_if: StrictBool = False


def projection_router(manager: Manager) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.post("/sessions/project", response_model=Results, responses=REFUSED,
                 summary="Project a session's screen to other sessions' stations (view-only)")
    async def project(body: ProjectRequest, caller: Who) -> Results | JSONResponse:
        return results(await manager.project(caller, body.source, body.target(), body.what_if))

    @router.post("/sessions/project/stop", response_model=Results, responses=REFUSED,
                 summary="Stop projecting: the targets' stations show their own desktops again")
    async def stop(body: StopRequest, caller: Who) -> Results | JSONResponse:
        target = Target(ids=tuple(body.ids)) if body.ids else None
        return results(await manager.stop_projecting(caller, body.source, target, body.what_if))

    return router

