"""Stations and groups on the web: the station cookie, and /api/v1/stations, /groups, /card-order.

A browser station is known by a long-lived cookie the station page sets on first use:
the station's id and nonce, signed with the daemon's web secret (HttpOnly, so a page's
script never reads it; SameSite=Strict). A student who writes another number into the
cookie, or copies the shape of one, is refused by the bridge: the signature and the
nonce stored with the station must both match. (Copying the whole cookie out of another
PC's browser profile needs that PC's account: see security.md.)
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import itsdangerous
from fastapi import APIRouter, Body, Path, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import HTTPConnection

from polydesk.core import i18n
from polydesk.core.i18n import N_
from polydesk.core.model import StoreError
from polydesk.core.texts import NAME_PATTERN
from polydesk.manager.manager import Manager
from polydesk.manager.station_book import MAX_NAME, MAX_STATIONS
from polydesk.web.routes.api import ERRORS, Who

log = logging.getLogger(__name__)

STATION_COOKIE = "polydesk_station"
STATION_MAX_AGE = 10 * 365 * 24 * 3600  # a lab PC stays the same station for years
DEFAULT_NAME = N_("Station {n}")


class ForgedStation(Exception):
    """A station cookie that this daemon did not issue, or for a station that is gone."""


class StationCookies:
    def __init__(self, secret: str, manager: Manager) -> None:
        self._signer = itsdangerous.Signer(secret, salt="polydesk-station")
        self.manager = manager

    def issue(self, station_id: int, nonce: str) -> str:
        return self._signer.sign(f"{station_id}:{nonce}").decode()

    def station_of(self, conn: HTTPConnection) -> int | None:
        """The station this browser is: None if it has no cookie yet; ForgedStation if it is not ours."""
        cookie = conn.cookies.get(STATION_COOKIE)
        if not cookie:
            return None
        try:
            value = self._signer.unsign(cookie).decode()
        except (itsdangerous.BadSignature, UnicodeDecodeError) as exc:
            raise ForgedStation("the station cookie is not signed by this server") from exc
        number, _, nonce = value.partition(":")
        if not number.isdecimal() or len(number) > 18 or self.manager.station_nonce(int(number)) != nonce:
            raise ForgedStation(f"station {number[:18]} does not know this cookie")
        return int(number)

    def ensure(self, request: Request, response: Response) -> None:
        """The station page: a browser that is no station yet (or sent a forged cookie) becomes a new one."""
        try:
            if self.station_of(request) is not None:
                return
        except ForgedStation as exc:
            address = request.client.host if request.client else "unknown"
            log.warning("station page from %s: %s; it gets a station of its own", address, exc)
        try:
            made = self.manager.new_station(lambda n: i18n.gettext(DEFAULT_NAME).format(n=n))
        except StoreError as exc:  # a full disk: the desktop still opens, unnamed, and is named later
            log.warning("no station could be made for a browser: %s", exc)
            return
        if made is None:
            log.warning("there are %d stations already: this browser stays unnamed", MAX_STATIONS)
            return
        station_id, nonce = made
        response.set_cookie(STATION_COOKIE, self.issue(station_id, nonce), max_age=STATION_MAX_AGE, path="/",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")


class StationOut(BaseModel):
    id: str
    name: str
    kind: str = Field(description="browser: a browser station; seat: a logind seat")
    created: float | None
    last_used: float | None
    last_user: str | None
    session_id: str | None = Field(description="The session at the station now; null: it is empty")
    user: str | None


# The schema states the rule station_book.one_line checks (a 400 naming the field otherwise).
_NAME = Field(min_length=1, max_length=MAX_NAME, json_schema_extra={"pattern": NAME_PATTERN})


class StationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Annotated[str, _NAME]


class GroupOut(BaseModel):
    name: str
    members: list[str]
    updated: float
    updated_by: str


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    members: list[Annotated[str, _NAME]] = Field(max_length=500)


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    users: list[Annotated[str, _NAME]] = Field(max_length=500)


GroupName = Annotated[str, Path(min_length=1, max_length=MAX_NAME,
                                json_schema_extra={"pattern": NAME_PATTERN})]


def rooms_router(manager: Manager) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.get("/stations", response_model=list[StationOut],
                summary="Stations, in use or empty (Dashboard users, administrators)")
    async def list_stations(caller: Who) -> list[dict[str, Any]]:
        return [s.to_json() for s in await manager.list_stations(caller)]

    @router.patch("/stations/{station_id}", response_model=StationOut,
                  summary="Rename a station (administrators)")
    async def rename_station(station_id: str, body: StationPatch, caller: Who) -> dict[str, Any]:
        return manager.rename_station(caller, station_id, body.name).to_json()

    @router.get("/groups", response_model=list[GroupOut], summary="Saved groups of students (shared)")
    async def list_groups(caller: Who) -> list[dict[str, Any]]:
        return [g.to_json() for g in manager.saved_groups(caller)]

    @router.put("/groups/{name}", response_model=GroupOut, summary="Save a group of students")
    async def save_group(name: GroupName, body: GroupIn, caller: Who) -> dict[str, Any]:
        return manager.save_group(caller, name, body.members).to_json()

    @router.delete("/groups/{name}", status_code=204, summary="Delete a group of students")
    async def delete_group(name: GroupName, caller: Who) -> None:
        manager.delete_group(caller, name)

    @router.get("/card-order", response_model=list[str],
                summary="Your custom order of the Dashboard's cards (user names)")
    async def get_order(caller: Who) -> list[str]:
        return manager.card_order(caller)

    @router.put("/card-order", response_model=list[str], summary="Save your custom order of the cards")
    async def put_order(caller: Who, body: Annotated[OrderIn, Body()]) -> list[str]:
        return manager.set_card_order(caller, body.users)

    return router
