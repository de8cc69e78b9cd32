"""Web limits on the REST API: /api/v1/sessions/web-limit (and /off), /api/v1/web-lists.

Thin calls into the manager's use cases (manager/weblimits.py), which check the sites, the
roles and the audit; the schema says the same rules for clients and fuzzers.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from polydesk.core.websites import LIST_NAME_PATTERN, MAX_NAME, MAX_SITES, SITE_PATTERN
from polydesk.manager.manager import Manager
from polydesk.web.routes.api import ERRORS, REFUSED, Results, Selection, Who, results

Site = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=SITE_PATTERN, description=(
    "contoso.com: that domain and its subdomains; a bare word (contoso): every domain with that "
    "label. In its one form: lower case, ASCII (IDNA), no scheme, port or path"))]


class WebLimitOut(BaseModel):
    mode: Literal["allow", "block"] = Field(description=(
        '"allow": only these sites (and nothing that names no site; none: no site at all); '
        '"block": every site but these'))
    sites: list[str]


class WebLimitRequest(Selection):
    mode: Literal["allow", "block"]
    sites: list[Site] = Field(max_length=MAX_SITES)


class WebListIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mode: Literal["allow", "block"]
    sites: list[Site] = Field(max_length=MAX_SITES)


class WebListOut(WebLimitOut):
    name: str
    updated: float
    updated_by: str


ListName = Annotated[str, Path(min_length=1, max_length=60, pattern=LIST_NAME_PATTERN)]


def web_limits_router(manager: Manager) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.post("/sessions/web-limit", response_model=Results, responses=REFUSED,
                 summary="Limit the web access of sessions (allow only, or block only, these sites)")
    async def limit(body: WebLimitRequest, caller: Who) -> Results | JSONResponse:
        return results(await manager.web_limit(caller, body.target(), body.mode, body.sites))

    @router.post("/sessions/web-limit/off", response_model=Results, responses=REFUSED,
                 summary="End the web limit of sessions")
    async def unlimit(body: Selection, caller: Who) -> Results | JSONResponse:
        return results(await manager.web_unlimit(caller, body.target()))

    @router.get("/web-lists", response_model=list[WebListOut], summary="Saved lists of sites (shared)")
    async def lists(caller: Who) -> list[dict[str, Any]]:
        return [saved.to_json() for saved in manager.web_lists(caller)]

    @router.put("/web-lists/{name}", response_model=WebListOut, summary="Save a list of sites")
    async def save(name: ListName, body: WebListIn, caller: Who) -> dict[str, Any]:
        return manager.save_web_list(caller, name, body.mode, body.sites).to_json()

    @router.delete("/web-lists/{name}", status_code=204, summary="Delete a saved list of sites")
    async def delete(name: ListName, caller: Who) -> None:
        manager.delete_web_list(caller, name)

    return router
