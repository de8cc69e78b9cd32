"""The fleet's desk: the manager's use cases over every host of the fleet.

``FleetDesk`` has the manager's method names and arguments. A session id written
``host/id`` belongs to that host; a plain id, and the caller's own session, to
this one. Sessions of this host go to the local Manager; those of another host
go to that host as a signed request, where its own Manager carries them out
with its own rules: the role is worked out there, from its Unix groups, and
the audit entry written there too (``via: fleet:<this host>``). This host
writes an entry of what it forwarded and what came back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from polydesk.core.events import public_session
from polydesk.core.model import (
    Action,
    BackendError,
    Caller,
    NotPermitted,
    Outcome,
    PolydeskError,
    Status,
    Target,
    UnknownHost,
    UnknownSession,
)
from polydesk.core.texts import check_text
from polydesk.fleet.listing import NOTHING_HERE, Here, Listing, Query, may_list
from polydesk.fleet.state import FleetMirror, HostView, count_states
from polydesk.manager.manager import Manager


class HostUnreachable(PolydeskError):
    """Another host of the fleet cannot be asked (offline, silent, or its answer not believed).

    Not a session backend's failure, but answered like one (web/errors.py: 502), under the same
    code: to the caller both are "the place that would do it could not"."""

    code = BackendError.code


class Link(Protocol):
    """What the desk needs of the NATS side (FleetNode)."""

    name: str
    mirror: FleetMirror
    request_timeout: float
    listen: str  # this host's own address (setting listen), as the hosts list shows it

    async def request(self, host: str, action: str, body: dict[str, Any],
                      timeout: float) -> tuple[dict[str, Any], bytes]: ...


@dataclass(frozen=True)
class FleetSession:
    host: str  # the fleet host that runs it
    online: bool  # whether that host answers now
    session: dict[str, Any]  # as events.public_session, with the host's own id

    @property
    def id(self) -> str:
        return f"{self.host}/{self.session['id']}"


@dataclass(frozen=True)
class RemoteThumbnail:
    jpeg: bytes
    etag: str
    version: int
    not_modified: bool


def caller_json(caller: Caller) -> dict[str, Any]:
    return {"user": caller.user, "uid": caller.uid, "role": str(caller.role), "via": caller.via}


def outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {"id": outcome.id, "status": str(outcome.status), "user": outcome.user, "reason": outcome.reason}


def outcome_from(data: Any) -> Outcome:
    try:
        status = Status(data["status"])
    except (KeyError, ValueError, TypeError):
        status = Status.FAILED
    return Outcome(str(data.get("id", "")), status, data.get("user"), data.get("reason"))


class FleetDesk:
    def __init__(self, link: Link, manager: Manager) -> None:
        self.link = link
        self.manager = manager
        self.listing = Listing(link.mirror)

    @property
    def name(self) -> str:
        return self.link.name

    # queries

    def hosts(self) -> list[HostView]:
        """Every host of the fleet; this one first, always online (it is answering)."""
        stored = self.manager.stored_sessions()
        states = count_states((str(session.state), session.blocked) for session in stored)
        here = HostView(self.name, True, True, len(stored), 0.0, self.link.listen, None, "online", states)
        others = [h for h in self.link.mirror.hosts() if h.name != self.name]
        mine = next((h for h in self.link.mirror.hosts() if h.name == self.name), None)
        if mine is not None:
            here = replace(here, public_key=mine.public_key, listen=mine.listen)
        return [here, *others]

    def host(self, name: str) -> HostView:
        found = next((h for h in self.hosts() if h.name == name), None)
        if found is None:
            raise UnknownHost(name)
        return found

    def check_host(self, name: str) -> None:
        """UnknownHost unless ``name`` is a host of the fleet (as ``host``, without a view of all)."""
        if name != self.name and not self.link.mirror.known(name):
            raise UnknownHost(name)

    async def list_json(self, caller: Caller, query: Query) -> list[bytes]:
        """Every session ``query`` matches that the caller may see, as the JSON list the REST API
        answers (ids host/id), in pieces: each host's JSON made once per change of it."""
        if query.host is not None:
            self.check_host(query.host)  # an unknown host is an error, not an empty list
        return self.listing.everything(caller, await self._here(caller, query), query)

    async def page_json(self, caller: Caller, query: Query, limit: int, cursor: str | None) -> bytes:
        """One page of that list: ``{"sessions": [...], "next": cursor or null, "total": N}``."""
        if query.host is not None:
            self.check_host(query.host)
        return self.listing.page(caller, await self._here(caller, query), query, limit, cursor)

    async def _here(self, caller: Caller, query: Query) -> Here:
        if query.host not in (None, self.name):
            return NOTHING_HERE
        mine = await self.manager.list_sessions(caller)
        return Here.of(self.name, [public_session(s) for s in mine], caller)

    async def get_session(self, caller: Caller, session_id: str) -> FleetSession:
        host, local_id = self.split(session_id)
        if host == self.name:
            return FleetSession(host, True, public_session(await self.manager.get_session(caller, local_id)))
        found = self.link.mirror.session(host, local_id)
        if found is None:
            raise UnknownSession(session_id)
        if not may_list(caller, found):
            raise NotPermitted(f"session {session_id} belongs to another user")
        return FleetSession(host, self.link.mirror.online(host), found)

    def split(self, session_id: str) -> tuple[str, str]:
        """(host, id on that host): ``host/id``, or a plain id of this host."""
        host, slash, local_id = session_id.partition("/")
        return (host, local_id) if slash else (self.name, session_id)

    # actions: the manager's signatures

    async def logoff(self, caller: Caller, target: Target, *, grace: int | None = None, force: bool = False,
                     message: str | None = None, what_if: bool = False, wait: bool = True,
                     wait_limit: float | None = None) -> list[Outcome]:
        check_text("message", message)  # here too: a bad text is not sent round the fleet
        options = {"grace": grace, "force": force, "message": message, "what_if": what_if, "wait": wait,
                   "wait_limit": wait_limit}

        async def local(t: Target) -> list[Outcome]:
            return await self.manager.logoff(caller, t, grace=grace, force=force, message=message,
                                             what_if=what_if, wait=wait, wait_limit=wait_limit)

        # A waiting log-off answers after at most wait_limit: give the other host that long too.
        extra = (wait_limit or 0.0) if wait and not what_if else 0.0
        return await self._act(caller, Action.LOGOFF, target, options, local, extra)

    async def disconnect(self, caller: Caller, target: Target) -> list[Outcome]:
        return await self._act(caller, Action.DISCONNECT, target, {},
                               lambda t: self.manager.disconnect(caller, t))

    async def block(self, caller: Caller, target: Target, message: str | None = None) -> list[Outcome]:
        check_text("message", message)
        return await self._act(caller, Action.BLOCK, target, {"message": message},
                               lambda t: self.manager.block(caller, t, message))

    async def unblock(self, caller: Caller, target: Target) -> list[Outcome]:
        return await self._act(caller, Action.UNBLOCK, target, {},
                               lambda t: self.manager.unblock(caller, t))

    async def message(self, caller: Caller, target: Target, text: str,
                      timeout: int | None = None) -> list[Outcome]:
        check_text("text", text, required=True)
        return await self._act(caller, Action.MESSAGE, target, {"text": text, "timeout": timeout},
                               lambda t: self.manager.message(caller, t, text, timeout))

    async def thumbnail(self, caller: Caller, host: str, session_id: str, size: str,
                        etag: str | None) -> RemoteThumbnail:
        """Another host's thumbnail of one of its sessions, asked for now (nobody watching, no traffic)."""
        if not self.link.mirror.known(host):
            raise UnknownHost(host)
        if not self.link.mirror.online(host):
            raise HostUnreachable(f"host {host} is offline")
        body = {"caller": caller_json(caller), "id": session_id, "size": size, "etag": etag}
        meta, jpeg = await self.link.request(host, "thumbnail", body, self.link.request_timeout)
        error = meta.get("error")
        if isinstance(error, dict):
            raise _remote_error(host, session_id, error)
        return RemoteThumbnail(jpeg, str(meta.get("etag", "")), int(meta.get("version", 0)),
                               bool(meta.get("not_modified")))

    # routing

    async def _act(self, caller: Caller, action: Action, target: Target, options: dict[str, Any],
                   local: Callable[[Target], Awaitable[list[Outcome]]], extra_wait: float = 0.0
                   ) -> list[Outcome]:
        if target.own:  # "your own session" is the one on this host
            return await local(Target())
        ask = _Asker(self, caller, action, options, local, extra_wait)
        if target.all:
            hosts = [self.name] if target.scope is None else (
                [h.name for h in self.hosts()] if target.scope == "*" else [self.host(target.scope).name])
            parts = await asyncio.gather(*(ask.all_on(h, qualify=target.scope is not None) for h in hosts))
            outcomes = [o for part in parts for o in part]
        else:
            written = [(sid, *self.split(sid)) for sid in dict.fromkeys(target.ids)]
            by_host: dict[str, list[str]] = {}
            for _, host, local_id in written:
                by_host.setdefault(host, []).append(local_id)
            answers = dict(zip(by_host, await asyncio.gather(
                *(ask.ids_on(host, ids) for host, ids in by_host.items())), strict=True))
            outcomes = [replace(answers[host].get(local_id) or Outcome(
                local_id, Status.FAILED, None, f"host {host} gave no result for it"), id=sid)
                for sid, host, local_id in written]
        self._audit_forwarded(caller, action, ask.forwarded, outcomes, options)
        return outcomes

    def _audit_forwarded(self, caller: Caller, action: Action, hosts: set[str], outcomes: list[Outcome],
                         options: dict[str, Any]) -> None:
        """This host's record of what it asked other hosts (they record what they did)."""
        if not hosts:
            return
        remote = [o for o in outcomes if self.split(o.id)[0] in hosts]
        self.manager.record_forwarded(caller, action, remote, {**options, "forwarded_to": sorted(hosts)})


class _Asker:
    """One request's calls to each host."""

    def __init__(self, desk: FleetDesk, caller: Caller, action: Action, options: dict[str, Any],
                 local: Callable[[Target], Awaitable[list[Outcome]]], extra_wait: float) -> None:
        self.desk, self.caller, self.action, self.options = desk, caller, action, options
        self.local, self.extra_wait = local, extra_wait
        self.forwarded: set[str] = set()

    async def all_on(self, host: str, qualify: bool) -> list[Outcome]:
        if host == self.desk.name:
            outcomes = await self.local(Target(all=True))
        else:
            outcomes = await self._remote(host, {"all": True}, ["*"])
        return [replace(o, id=f"{host}/{o.id}") if qualify else o for o in outcomes]

    async def ids_on(self, host: str, ids: list[str]) -> dict[str, Outcome]:
        if host == self.desk.name:
            outcomes = await self.local(Target(ids=tuple(ids)))
        elif not self.desk.link.mirror.known(host):
            outcomes = [Outcome(i, Status.UNKNOWN, None, f"no host {host!r} in the fleet") for i in ids]
        else:
            outcomes = await self._remote(host, {"ids": ids}, ids)
        return {o.id: o for o in outcomes}

    async def _remote(self, host: str, selection: dict[str, Any], ids: list[str]) -> list[Outcome]:
        self.forwarded.add(host)
        mirror = self.desk.link.mirror
        if not mirror.online(host):
            return [Outcome(i, Status.FAILED, None, f"host {host} is offline") for i in ids]
        body = {"caller": caller_json(self.caller), **selection, "options": self.options}
        timeout = self.desk.link.request_timeout + self.extra_wait
        try:
            meta, _ = await self.desk.link.request(host, str(self.action), body, timeout)
        except HostUnreachable as exc:
            return [Outcome(i, Status.FAILED, None, str(exc)) for i in ids]
        error = meta.get("error")
        if isinstance(error, dict):
            reason = f"host {host}: {error.get('message', 'failed')}"
            status = Status.FORBIDDEN if error.get("code") == NotPermitted.code else Status.FAILED
            return [Outcome(i, status, None, reason) for i in ids]
        return [outcome_from(r) for r in meta.get("results", []) if isinstance(r, dict)]


def _remote_error(host: str, session_id: str, error: dict[str, Any]) -> PolydeskError:
    message = str(error.get("message", "failed"))
    if error.get("code") == UnknownSession.code:
        return UnknownSession(f"{host}/{session_id}")
    if error.get("code") == NotPermitted.code:
        return NotPermitted(message)
    return HostUnreachable(f"host {host}: {message}")
