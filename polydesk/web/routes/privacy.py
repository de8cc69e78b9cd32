"""The monitoring notice: shown to a standard user once, until they dismiss it (issue 14.4).

It used to sit above the desktop at every log-on, taking 60-100 pixels of a small
screen. Now it lies over the desktop (the session keeps the whole window) and is
shown until the user dismisses it; which version they saw is kept server-side, per
user, so it comes back only when what it says changes (its text, or the settings
that make it true), on whatever computer they sign in at next.
"""

from __future__ import annotations

import hashlib
from typing import Protocol

from fastapi import APIRouter, Response

from polydesk.config.settings import Settings
from polydesk.core.i18n import N_
from polydesk.core.model import Caller, Role
from polydesk.web.routes.api import ERRORS, Who

TEXT = N_("Monitoring is on: Dashboard users and administrators of this computer can see your screen "
          "and may log off, disconnect, block or message your session.")


def version(settings: Settings) -> str:
    """What the notice says now: a user who dismissed another version sees it again."""
    said = f"{TEXT}\0monitoring={settings.monitoring}\0notice={settings.privacy_notice}"
    return hashlib.sha256(said.encode()).hexdigest()[:32]


def applies(caller: Caller, settings: Settings) -> bool:
    """Standard users are told, while they may be watched (administrators know it)."""
    return caller.role == Role.STANDARD and settings.monitoring and settings.privacy_notice


class NoticeRecords(Protocol):
    """Which version of the notice each user dismissed (the Store): it follows them to any computer."""

    def notice_seen(self, user: str) -> str | None: ...

    def set_notice_seen(self, user: str, version: str) -> None: ...


class Notice:
    def __init__(self, settings: Settings, records: NoticeRecords) -> None:
        self.settings = settings
        self.records = records

    def due(self, caller: Caller) -> bool:
        """Show it: it applies and this user has not dismissed this version of it."""
        settings = self.settings
        return applies(caller, settings) and self.records.notice_seen(caller.user) != version(settings)

    def seen(self, caller: Caller) -> None:
        # Only the caller's own record: nobody can mark it read for another user.
        if applies(caller, self.settings):
            self.records.set_notice_seen(caller.user, version(self.settings))


def privacy_router(notice: Notice) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)

    @router.post("/privacy-notice/seen", status_code=204,
                 summary="The caller has read the monitoring notice: do not show it again")
    async def seen(caller: Who) -> Response:
        notice.seen(caller)
        return Response(status_code=204)

    return router
