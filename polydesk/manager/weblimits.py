"""Limit web access: per session, "allow only these sites" or "disallow only these sites",
held by the kernel for everything the session's user runs (docs/web-limits.md).

The limit is part of the stored session (``Session.web_limit``), so it outlives a daemon
restart as a block does and ends with the session. The kernel holds it per user (a uid):
system/webrules.py redirects the user's web connections to their port of the filtering proxy
(system/webproxy.py), which applies the list. ``WebLimits.enforce`` makes the kernel's table
and the proxy's listeners say what the stored sessions say; it runs at start, after every
change, and whenever a session ends (the bus). Should one user have several sessions with
different limits, the most recently limited session's holds for them all.

Roles as for block (a Dashboard user or an administrator, never one's own session); every
change is audited; the saved lists ("Exam", "Research") are shared by the Dashboard users
as the groups of students are (groups.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from polydesk.core import i18n, policy
from polydesk.core.i18n import N_
from polydesk.core.model import (
    Action,
    BackendError,
    Caller,
    InvalidRequest,
    NotPermitted,
    Outcome,
    Session,
    Status,
    Target,
    UnknownName,
)
from polydesk.core.websites import WebLimit, WebMode, list_name, web_limit
from polydesk.manager.each import each
from polydesk.manager.parts import Parts
from polydesk.system import webrules
from polydesk.system.webproxy import WebProxy

log = logging.getLogger(__name__)

MAX_LISTS = 100
REFUSED_TITLE = N_("Blocked by your teacher: {site}")
REFUSED_TEXT = N_("This computer's web access is limited for this session.")


@dataclass(frozen=True)
class SavedList:
    name: str
    limit: WebLimit
    updated: float
    updated_by: str

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.limit.as_dict(), "updated": self.updated,
                "updated_by": self.updated_by}


def refused_page(site: str) -> bytes:
    """The small page a refused plain-HTTP request gets, in the server's language."""
    title = html.escape(i18n.server_gettext(REFUSED_TITLE).format(site=site))
    text = html.escape(i18n.server_gettext(REFUSED_TEXT))
    language = i18n.bcp47(i18n.server_language())
    body = (f'<!doctype html><html lang="{language}"><meta charset="utf-8"><title>{title}</title>'
            f"<h1>{title}</h1><p>{text}</p></html>\n").encode()
    return (b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/html; charset=utf-8\r\n"
            b"Cache-Control: no-store\r\nConnection: close\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


class WebLimits:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self.proxy = WebProxy(refused_page)
        self.enforced: dict[int, WebLimit] = {}
        self.lock = asyncio.Lock()
        self.follower: asyncio.Task[None] | None = None

    # the use cases

    async def limit(self, caller: Caller, target: Target, mode: object, sites: object) -> list[Outcome]:
        limit = web_limit(mode, sites)
        self._require_nft()

        async def act(session: Session) -> Outcome:
            self.parts.set(session.with_(web_limit=limit))
            return Outcome(session.id, Status.WEB_LIMITED, session.user)

        outcomes = await each(self.parts, caller, Action.WEB_LIMIT, target, act, limit.as_dict())
        if any(o.status == Status.WEB_LIMITED for o in outcomes):
            await self.enforce()
        return outcomes

    async def unlimit(self, caller: Caller, target: Target) -> list[Outcome]:
        async def act(session: Session) -> Outcome:
            self.parts.set(session.with_(web_limit=None))
            return Outcome(session.id, Status.WEB_UNLIMITED, session.user)

        outcomes = await each(self.parts, caller, Action.WEB_LIMIT, target, act, {"mode": "off"})
        if any(o.status == Status.WEB_UNLIMITED for o in outcomes):
            await self.enforce()
        return outcomes

    # the saved lists

    def lists(self, caller: Caller) -> list[SavedList]:
        self._require_lists(caller)
        rows = self.parts.store.read("SELECT name, mode, sites, updated, updated_by FROM web_lists "
                                     "ORDER BY name COLLATE NOCASE")
        return [SavedList(str(name), web_limit(mode, json.loads(sites)), float(updated), str(by))
                for name, mode, sites, updated, by in rows]

    def save_list(self, caller: Caller, name: object, mode: object, sites: object) -> SavedList:
        self._require_lists(caller, "save", name)
        saved = SavedList(list_name(name), web_limit(mode, sites), time.time(), caller.user)
        known = {s.name for s in self.lists(caller)}
        if saved.name not in known and len(known) >= MAX_LISTS:
            raise InvalidRequest(f"there are {MAX_LISTS} saved lists already: delete one first")
        self.parts.store.write((
            "INSERT OR REPLACE INTO web_lists VALUES (?, ?, ?, ?, ?)",
            (saved.name, str(saved.limit.mode), json.dumps(saved.limit.sites), saved.updated, caller.user)))
        self._audit_list(caller, saved.name, "changed" if saved.name in known else "saved",
                         saved.limit.as_dict())
        return saved

    def delete_list(self, caller: Caller, name: str) -> None:
        self._require_lists(caller, "delete", name)
        if self.parts.store.write(("DELETE FROM web_lists WHERE name = ?", (name,))).rowcount == 0:
            raise UnknownName(f"no saved list of sites named {name!r}")
        self._audit_list(caller, name, "deleted", {})

    # the kernel and the proxy

    async def start(self) -> None:
        """Rebuild the rules from the store (a killed daemon's table is replaced), then follow
        the sessions: one that ends takes its user's limit with it."""
        if not webrules.nft_available():
            if any(s.web_limit for s in self.parts.store.sessions()):
                log.error("web limits: sessions are limited but nft is not installed (scripts/install)")
            return
        await self.enforce(cut=False)  # what was open under the old table was limited already
        self.follower = asyncio.create_task(self._follow(), name="web-limits")

    async def close(self) -> None:
        """The daemon stops: limited users' web stays refused (the rules reset it) until the
        next daemon takes over; with no limit, Polydesk's table goes."""
        if self.follower is not None:
            self.follower.cancel()
            await asyncio.gather(self.follower, return_exceptions=True)
        await self.proxy.close()
        if webrules.nft_available():
            with contextlib.suppress(BackendError):  # as the store says now: ended sessions are gone
                users = [webrules.UserRules(uid, 0, True) for uid in self._wanted()]
                await asyncio.to_thread(webrules.apply, users, (), True)

    async def enforce(self, cut: bool = True) -> None:
        async with self.lock:
            wanted = self._wanted()
            for uid in set(self.enforced) - set(wanted):
                await self.proxy.stop(uid)
            users = [webrules.UserRules(uid, await self.proxy.serve(uid, limit), limit.mode == WebMode.ALLOW)
                     for uid, limit in wanted.items()]
            await asyncio.to_thread(webrules.apply, users, webrules.resolvers())
            changed = {uid: limit.mode == WebMode.ALLOW for uid, limit in wanted.items()
                       if self.enforced.get(uid) != limit}
            self.enforced = wanted
            if cut and changed:
                await asyncio.to_thread(webrules.cut_connections, changed)

    def _wanted(self) -> dict[int, WebLimit]:
        wanted: dict[int, tuple[int, WebLimit]] = {}
        for session in self.parts.store.sessions():
            if session.web_limit is not None and session.version > wanted.get(session.uid, (-1,))[0]:
                wanted[session.uid] = (session.version, session.web_limit)
        return {uid: limit for uid, (_, limit) in wanted.items()}

    async def _follow(self) -> None:
        async with self.parts.bus.subscribe() as queue:
            while True:
                event = await queue.get()
                if event.kind == "session-ended" and self.enforced and self._wanted() != self.enforced:
                    try:
                        await self.enforce()
                    except BackendError:
                        log.exception("web limits: the rules could not follow an ended session")

    # helpers

    def _require_nft(self) -> None:
        if not webrules.nft_available():
            raise BackendError("web limits need nftables: the nft command is not installed "
                               "(scripts/install installs it)")

    def _require_lists(self, caller: Caller, change: str | None = None, name: object = None) -> None:
        decision = policy.may_global(caller, Action.WEB_LISTS)
        if decision:
            return
        if change is not None:
            self._audit_list(caller, str(name)[:128], "not-permitted", {"change": change}, decision.reason)
        raise NotPermitted(decision.reason)

    def _audit_list(self, caller: Caller, name: str, status: str, detail: dict[str, Any],
                    reason: str | None = None) -> None:
        self.parts.audit.write(caller, Action.WEB_LISTS, [name],
                               [{"id": name, "status": status, "user": None, "reason": reason}],
                               allowed=reason is None, reason=reason, detail=detail)
