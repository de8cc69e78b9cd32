"""The use cases: logon, logoff, disconnect, block, unblock, message, list, audit.

Every interface (REST, web pages, CLI through the API) ends up here, so this is
the one place that checks policy, changes sessions, writes the audit log and
publishes events. Hosts, the store and the bus come in by constructor.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
import math
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from polydesk.backends.base import Discovered, DiscoveringBackend, SessionBackend
from polydesk.config.settings import Settings
from polydesk.core import policy
from polydesk.core.events import (
    AuditRecord,
    Event,
    EventBus,
    session_changed,
    session_ended,
    session_started,
)
from polydesk.core.i18n import N_, normalize, session_gettext, session_language
from polydesk.core.model import (
    SYSTEM,
    Account,
    Action,
    BackendError,
    Caller,
    EndReason,
    InvalidRequest,
    LogoffPlan,
    NotPermitted,
    Outcome,
    PolydeskError,
    Role,
    Session,
    SessionState,
    Status,
    StoreError,
    Target,
    UnknownHost,
    UnknownSession,
    UnknownToken,
    UnknownUser,
)
from polydesk.core.texts import check_text
from polydesk.manager import logoff_cancel
from polydesk.manager.blockguard import BlockGuard
from polydesk.manager.groups import Groups
from polydesk.manager.limits import Limits
from polydesk.manager.screensize import Ports, ScreenSizes
from polydesk.manager.station_book import StationBook
from polydesk.manager.stations import DISCONNECTED, ENDED, TAKEN_OVER, Mode, Station, Stations
from polydesk.store.store import Priority, Store, essential
from polydesk.system import peer
from polydesk.system.accounts import AccountCache, desktop_rules

log = logging.getLogger(__name__)
T = TypeVar("T")

# Shown in the session, in its user's language (in_session), whoever asked.
LOGOFF_NOTICE = N_("You will be logged off in {seconds} seconds. Save your work now.")
# Actions that take power away from a user: they still work on a full state directory
# (their record uses the store's reserve), so a student who fills the disk cannot stop them.
TAKES_POWER = frozenset({Action.BLOCK, Action.LOGOFF, Action.DISCONNECT})
STATION_GRACE_S = 2.0
IDLE_FRESH_S = 2.0  # an idle time older than this is asked for again (in the background)


class Manager:
    def __init__(
        self,
        backends: Sequence[SessionBackend],
        store: Store,
        bus: EventBus,
        settings: Settings,
        lookup: Callable[[str], Account],
    ) -> None:
        if not backends:
            raise ValueError("at least one session backend is needed")
        self.backends: Mapping[str, SessionBackend] = {backend.name: backend for backend in backends}
        # Logons go to the first backend that starts sessions itself (not logind, whose the OS starts).
        self.default_backend = next((b for b in backends if not isinstance(b, DiscoveringBackend)),
                                    backends[0])
        self.store = store
        self.bus = bus
        self.settings = settings
        self.lookup = lookup
        # Roles follow the groups: a session's owner's role is read again on use (session_now).
        self.accounts = AccountCache(settings.role_cache_seconds, by_name=lookup)
        self._locks: dict[str, asyncio.Lock] = {}
        self._watchers: dict[str, asyncio.Task[None]] = {}
        self._logoffs: dict[str, asyncio.Task[Outcome]] = {}
        self._idle: dict[str, tuple[float, float | None]] = {}
        self._idle_queries: dict[str, asyncio.Task[float | None]] = {}
        self.stations = Stations()
        self.station_book = StationBook(store, self._restation)  # named stations (station_book.py)
        self.groups = Groups(store)
        self._blocked: set[str] = set()  # read on every input message a station sends
        self._going_away: dict[str, asyncio.Task[None]] = {}
        self._discovery: list[asyncio.Task[None]] = []
        self._limits: asyncio.Task[None] | None = None  # idle / disconnected limits (limits.py)
        self._block_guard: asyncio.Task[None] | None = None  # blockguard.py
        self._refused_keys: set[str] = set()  # discovered sessions refused a place (audited once)
        self.screens = ScreenSizes(settings, Ports(self.session_now, self._backend, self._set,
                                                   self._audit_resize))

    # lifecycle

    async def start(self) -> None:
        """Re-adopt every session the store knows; finish log-offs a crash interrupted;
        then follow the backends whose sessions the OS starts (logind)."""
        discovering = [h for h in self.backends.values() if isinstance(h, DiscoveringBackend)]
        for discovering_backend in discovering:
            await discovering_backend.open()  # a BackendError here stops the daemon with its message
        self.store.end_dangling_connections(time.time())  # no station survives a restart
        for session in self.store.sessions():
            if session.blocked:
                self._blocked.add(session.id)
            backend = self.backends.get(session.backend)
            alive = backend is not None and await backend.adopt(session)
            if not alive and isinstance(backend, DiscoveringBackend):
                await self._ended_by_itself(session, EndReason.LOGOUT, "it ended while the daemon was down")
            elif not alive:
                await self._ended_by_itself(session, EndReason.CRASHED,
                                            "its display server died while the daemon was down")
            elif session.state == SessionState.LOGGING_OFF:
                self._logoffs[session.id] = _background(
                    self._run_logoff(session, self.state_without_logoff(session), recovered=True),
                    f"log-off of session {session.id}")
                self._watch(session)
            else:
                self._watch(session)
        for discovering_backend in discovering:
            self._discovery.append(_background(self._discover(discovering_backend),
                                               f"discovery of backend {discovering_backend.name}"))
        limits = Limits(self)
        if limits.enabled:
            self._limits = _background(limits.run(), "idle and disconnected limits")
        if self.settings.block_guard_interval > 0:
            guard = BlockGuard(self, self.settings.block_guard_interval)
            self._block_guard = _background(guard.run(), "the block guard")

    async def recover(self) -> list[str]:
        """Rebuild the state of sessions the store does not know (a lost or damaged database)
        from what the backends find running. Call before start(). Returns the recovered ids."""
        known = {s.id for s in self.store.sessions()}
        recovered = []
        for backend in self.backends.values():
            for found in await backend.recover():
                if found.session_id in known:
                    continue
                try:
                    account = self.lookup(found.user)
                except PolydeskError as exc:
                    log.warning("session %s of %s not recovered: %s", found.session_id, found.user, exc)
                    continue
                if found.session_id.isdigit():
                    self.store.reserve_ids(int(found.session_id))
                self.store.put_session(Session(
                    id=found.session_id, user=account.name, uid=account.uid,
                    role=self._role_of(account), backend=backend.name, state=SessionState.DISCONNECTED,
                    logon_time=found.logon_time, display=found.started.display,
                    backend_data=found.started.data,
                ))
                recovered.append(found.session_id)
        outcomes = [self._result(Outcome(i, Status.RESUMED, None, "recovered from the backend"))
                    for i in recovered]
        self._audit(SYSTEM, Action.LOGON, recovered, outcomes, detail={"recover": True})
        return recovered

    async def close(self) -> None:
        """Stop watching and wait for nothing: sessions keep running without the daemon."""
        tasks = [*self._discovery, *self._watchers.values(), *self._logoffs.values(),
                 *self._going_away.values(), *self._idle_queries.values(),
                 *[task for task in (self._limits, self._block_guard) if task is not None]]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.screens.close()
        for backend in self.backends.values():
            await backend.close()

    # queries

    async def list_sessions(self, caller: Caller) -> list[Session]:
        visible = [s for s in self._sessions_now() if policy.may_see(caller, s)]
        unknown = [s for s in visible if s.id not in self._idle]
        if unknown:  # the first time only: ask the backends, all at once
            await asyncio.gather(*(self._idle_seconds(s) for s in unknown))
        return [s.with_(idle_s=self._idle_known(s)) for s in visible]

    async def get_session(self, caller: Caller, session_id: str) -> Session:
        session = self.session_now(session_id)
        if session is None:
            raise UnknownSession(session_id)
        if not policy.may_see(caller, session):
            raise NotPermitted(f"session {session_id} belongs to another user")
        return session.with_(idle_s=await self._idle_seconds(session))

    def connections(self, caller: Caller, session_id: str) -> list[dict[str, Any]]:
        """Who was attached to a session, from where and when: for whoever may view it."""
        session = self.session_now(session_id)
        if session is None:
            raise UnknownSession(session_id)
        decision = policy.may(caller, Action.VIEW, session)
        if not decision:
            raise NotPermitted(decision.reason)
        return self.store.connections(session_id)

    def audit(self, caller: Caller, limit: int = 100, since: int = 0) -> list[AuditRecord]:
        decision = policy.may_global(caller, Action.AUDIT)
        if not decision:
            self._audit(caller, Action.AUDIT, [], [], allowed=False, reason=decision.reason)
            raise NotPermitted(decision.reason)
        return list(self.store.audit(limit=limit, since_seq=since))

    # API tokens (administrators): only a digest is stored; the token is shown once

    def create_token(self, caller: Caller, user: str | None = None, note: str = "") -> tuple[str, str]:
        """A new token acting as ``user`` (default: the caller). Returns (token id, token)."""
        decision = policy.may_global(caller, Action.TOKEN)
        name = user or caller.user
        if not decision:
            self._audit(caller, Action.TOKEN, [], [], allowed=False, reason=decision.reason,
                        detail={"user": name})
            raise NotPermitted(decision.reason)
        check_text("note", note, max_length=200)
        if user is not None:
            check_text("user", user, max_length=64, required=True)
        account = self.lookup(name)
        token_id, token = secrets.token_hex(6), "pdk_" + secrets.token_urlsafe(32)
        self.store.add_token(token_id, token_digest(token), account.name, caller.user, note)
        self._audit(caller, Action.TOKEN, [], [],
                    detail={"op": "create", "token_id": token_id, "user": account.name, "note": note})
        return token_id, token

    def tokens(self, caller: Caller) -> list[dict[str, Any]]:
        decision = policy.may_global(caller, Action.TOKEN)
        if not decision:
            raise NotPermitted(decision.reason)
        return self.store.tokens()

    def revoke_token(self, caller: Caller, token_id: str) -> None:
        decision = policy.may_global(caller, Action.TOKEN)
        if not decision:
            raise NotPermitted(decision.reason)
        if not self.store.revoke_token(token_id):
            raise UnknownToken(token_id)
        self._audit(caller, Action.TOKEN, [], [], detail={"op": "revoke", "token_id": token_id})

    # logon

    async def logon(self, caller: Caller, user: str, language: str | None = None) -> tuple[Session, bool]:
        """Start ``user``'s session, or resume the running one. Returns (session, resumed).

        ``language``: what the caller's browser asked for (Accept-Language). It becomes the
        session's language only when the caller is the user at their own station: an
        administrator starting someone's session does not choose the words shown in it."""
        check_text("user", user, max_length=64, required=True)
        decision = policy.may_logon(caller, user)
        if not decision:
            self._audit(caller, Action.LOGON, [], [], allowed=False, reason=decision.reason,
                        detail={"user": user})
            raise NotPermitted(decision.reason)
        account = self.lookup(user)
        decision = self._may_have_desktop(account.name, account.uid, account.shell)
        if not decision:
            self._audit(caller, Action.LOGON, [], [], allowed=False, reason=decision.reason,
                        detail={"user": account.name, "uid": account.uid, "shell": account.shell})
            raise NotPermitted(decision.reason)
        self.store.ensure_space()
        asked = normalize(language) if language and caller.user == account.name else None
        async with self._lock(f"user:{account.name}"):
            # Only the default backend's sessions resume: a desktop on a seat or an SSH login
            # (logind) is not one a browser station can take over.
            existing = [s for s in self.store.sessions()
                        if s.uid == account.uid and s.state != SessionState.LOGGING_OFF
                        and s.backend == self.default_backend.name]
            if existing and not self.settings.allow_multiple_sessions:
                session = self._set(existing[0].with_(state=SessionState.ACTIVE,
                                                      language=asked or existing[0].language))
                self._audit(caller, Action.LOGON, [session.id],
                            [self._result(Outcome(session.id, Status.RESUMED, user))],
                            detail={"user": user, "resumed": True})
                return session, True
            session_id = self.store.new_session_id()
            try:
                started = await self.default_backend.start(session_id, account)
            except BackendError as exc:
                self._audit(caller, Action.LOGON, [session_id],
                            [self._result(Outcome(session_id, Status.FAILED, user, str(exc)))],
                            detail={"user": user})
                raise
            session = Session(
                id=session_id, user=account.name, uid=account.uid,
                role=self._role_of(account),
                backend=self.default_backend.name, state=SessionState.ACTIVE, logon_time=time.time(),
                display=started.display, backend_data=started.data, language=asked,
            )
            session = self.store.put_session(session)
            self._watch(session)
            self.bus.publish(session_started(session))
            self._audit(caller, Action.LOGON, [session_id],
                        [self._result(Outcome(session_id, Status.STARTED, user))],
                        detail={"user": user, "resumed": False})
            return session, False

    # actions on sessions

    async def logoff(
        self,
        caller: Caller,
        target: Target,
        *,
        grace: int | None = None,
        force: bool = False,
        message: str | None = None,
        what_if: bool = False,
        wait: bool = True,
        wait_limit: float | None = None,
    ) -> list[Outcome]:
        """End sessions. With ``wait``, answer once they have ended, or after ``wait_limit``
        seconds with those still under way reported as logging-off."""
        asked = grace
        grace = self.settings.logoff_grace if grace is None else grace
        if not (_whole(grace) and grace >= 0):
            raise InvalidRequest("grace: must be 0 or more whole seconds")
        if not isinstance(force, bool):
            raise InvalidRequest("force: must be true or false")
        check_text("message", message)

        async def act(session: Session) -> Outcome:
            if what_if:
                return Outcome(session.id, Status.WOULD_END, session.user)
            # Users logging themselves off need no warning: only the polite close (unless asked).
            own_grace = (asked or 0) if policy.owns(caller, session) else grace
            task = self._begin_logoff(caller, session, own_grace, force, message)
            if wait:
                # Waiting is no hold on the session (_each_one's lock): a cancel, or a forced
                # log-off, may come in the grace period.
                lock = self._lock(session.id)
                lock.release()
                try:
                    return await asyncio.wait_for(asyncio.shield(task), wait_limit)
                except TimeoutError:
                    pass
                except asyncio.CancelledError:
                    if not task.cancelled():  # this request was cancelled, not the log-off
                        raise
                    return Outcome(session.id, Status.LOGOFF_CANCELLED, session.user)
                finally:
                    await lock.acquire()
            return Outcome(session.id, Status.LOGGING_OFF, session.user)

        detail = {"grace": grace, "force": force, "what_if": what_if, "message": message}
        return await self._each(caller, Action.LOGOFF, target, act, detail, allow_logging_off=True)

    async def disconnect(self, caller: Caller, target: Target) -> list[Outcome]:
        async def act(session: Session) -> Outcome:
            if not policy.owns(caller, session):  # their own Disconnect is their choice to stay signed in
                self._end_signins(caller, session.id, session.user, DISCONNECTED)
            self.stations.close_all(session.id, DISCONNECTED)
            await self._backend(session).disconnect(session)
            self._set(session.with_(state=SessionState.DISCONNECTED, client=None, station=None))
            return Outcome(session.id, Status.DISCONNECTED, session.user)

        return await self._each(caller, Action.DISCONNECT, target, act, {})

    async def block(self, caller: Caller, target: Target, message: str | None = None) -> list[Outcome]:
        typed = check_text("message", message)
        check_text("message", self.settings.block_message)  # the default too: from the configuration

        async def act(session: Session) -> Outcome:
            text = typed or self.in_session(session, self.settings.block_message)
            backend = self._backend(session)
            try:
                await backend.block(session, text)
                self._set(session.with_(blocked=True, block_message=text, block_undone=0))
            except Exception as exc:
                await self._restore_cover(backend, session, exc)
                raise
            return Outcome(session.id, Status.BLOCKED, session.user)

        return await self._each(caller, Action.BLOCK, target, act,
                                {"message": typed or self.settings.block_message})

    async def unblock(self, caller: Caller, target: Target) -> list[Outcome]:
        async def act(session: Session) -> Outcome:
            backend = self._backend(session)
            try:
                await backend.unblock(session)
                self._set(session.with_(blocked=False, block_message=None, block_undone=0))
            except Exception as exc:
                await self._restore_cover(backend, session, exc)
                raise
            return Outcome(session.id, Status.UNBLOCKED, session.user)

        return await self._each(caller, Action.UNBLOCK, target, act, {})

    async def _restore_cover(self, backend: SessionBackend, session: Session, failure: Exception) -> None:
        """A block or unblock failed after the backend may have changed something: a bug at the
        backend's edge, or the store could not record it. Put the backend back as the store has it,
        so that what the Dashboard says stays true. A BackendError needs nothing: block and
        unblock are all or nothing at the backend (a backend that fails puts back what it did)."""
        if isinstance(failure, BackendError):
            return
        try:
            if session.blocked:
                message = session.block_message or self.in_session(session, self.settings.block_message)
                await backend.block(session, message)
            else:
                await backend.unblock(session)
        except Exception as exc:  # reported with the first failure; the watch (or a retry) mends it
            log.warning("session %s: could not restore its cover after a failure: %s", session.id, exc)

    async def message(
        self, caller: Caller, target: Target, text: str, timeout: int | None = None
    ) -> list[Outcome]:
        check_text("text", text, required=True)
        if timeout is not None and not (_whole(timeout) and timeout > 0):
            raise InvalidRequest("time: must be a positive number of seconds")

        async def act(session: Session) -> Outcome:
            await self._backend(session).message(session, text, timeout)
            return Outcome(session.id, Status.SHOWN, session.user)

        return await self._each(caller, Action.MESSAGE, target, act, {"text": text, "time": timeout})

    async def restore_blocks(self) -> None:
        """One round of the block guard (blockguard.py) over every blocked session, at once."""
        blocked = [s.id for s in self.store.sessions() if s.blocked]
        await asyncio.gather(*(self._restore_block(session_id) for session_id in blocked))

    async def _restore_block(self, session_id: str) -> None:
        async with self._lock(session_id):  # never while a block or an unblock is carried out
            session = self.store.session(session_id)
            if session is None or not session.blocked or session.state == SessionState.LOGGING_OFF:
                return
            try:
                undone = await asyncio.wait_for(self._backend(session).restore_block(session), 10)
            except (BackendError, TimeoutError) as exc:
                log.debug("session %s: cannot check its block: %s", session_id, exc)
                return
            if not undone:
                return
            log.warning("session %s: the block was undone (%s); put back", session_id, "; ".join(undone))
            # Recorded from the reserve's upper half at most (not essential): a student who
            # fills the disk and kills the cover in a loop must not spend what a log-off needs.
            session = self._set(session.with_(block_undone=session.block_undone + 1))
        outcome = Outcome(session_id, Status.BLOCKED, session.user, "; ".join(undone))
        self._audit(SYSTEM, Action.BLOCK, [session_id], [self._result(outcome)],
                    detail={"restored": undone, "times": session.block_undone})

    # the shape every action on sessions shares

    async def _each(
        self,
        caller: Caller,
        action: Action,
        target: Target,
        act: Callable[[Session], Awaitable[Outcome]],
        detail: dict[str, Any],
        allow_logging_off: bool = False,
    ) -> list[Outcome]:
        # Refuse before acting, not after, when the disk is full; what takes power away
        # still works (its records may spend the whole reserve), tiny records its upper half.
        takes_power = action in TAKES_POWER
        self.store.ensure_space(Priority.ESSENTIAL if takes_power else Priority.SMALL)
        with essential() if takes_power else contextlib.nullcontext():  # the log-off tasks too
            return await self._each_one(caller, action, target, act, detail, allow_logging_off)

    async def _each_one(
        self,
        caller: Caller,
        action: Action,
        target: Target,
        act: Callable[[Session], Awaitable[Outcome]],
        detail: dict[str, Any],
        allow_logging_off: bool,
    ) -> list[Outcome]:
        resolved = self.resolve(caller, action, target)

        async def run(item: Session | Outcome) -> Outcome:
            if isinstance(item, Outcome):
                return item
            if item.state == SessionState.LOGGING_OFF and not allow_logging_off:
                return Outcome(item.id, Status.FAILED, item.user, "the session is logging off")
            try:
                async with self._lock(item.id):
                    current = self.store.session(item.id)
                    if current is None:
                        return Outcome(item.id, Status.UNKNOWN, item.user, "the session has ended")
                    return await act(current)
            except PolydeskError as exc:  # the backend, or the store (a full disk past its reserve)
                return Outcome(item.id, Status.FAILED, item.user, str(exc))
            except Exception as exc:  # a bug at a backend's edge: this session's result says so
                log.exception("%s of session %s failed", action, item.id)
                return Outcome(item.id, Status.FAILED, item.user, f"internal error: {exc!r}")

        outcomes = list(await asyncio.gather(*(run(item) for item in resolved)))
        self._audit(
            caller, action, [o.id for o in outcomes], [self._result(o) for o in outcomes],
            allowed=all(o.status != Status.FORBIDDEN for o in outcomes), detail=detail,
        )
        return outcomes

    def resolve(self, caller: Caller, action: Action, target: Target) -> list[Session | Outcome]:
        """The sessions a request is about; refusals and unknown ids as ready Outcomes."""
        if target.scope is not None:  # fleet.FleetDesk takes those apart before they come here
            raise UnknownHost(target.scope, "fleet mode is off on this host (no [fleet] in its config)")
        sessions = self._sessions_now()
        if target.all:
            return [s for s in sessions
                    if not policy.owns(caller, s) and policy.may(caller, action, s)]
        if target.own:
            own = [s for s in sessions if policy.owns(caller, s)]
            if not own:
                return [Outcome("", Status.UNKNOWN, caller.user, "you have no session")]
            return [s if policy.may(caller, action, s)
                    else Outcome(s.id, Status.FORBIDDEN, s.user, policy.may(caller, action, s).reason)
                    for s in own]
        by_id = {s.id: s for s in sessions}
        resolved: list[Session | Outcome] = []
        for session_id in dict.fromkeys(target.ids):
            session = by_id.get(session_id)
            if session is None:
                resolved.append(Outcome(session_id, Status.UNKNOWN, None,
                                        f"no session with id {session_id!r}"))
                continue
            decision = policy.may(caller, action, session)
            resolved.append(session if decision
                            else Outcome(session_id, Status.FORBIDDEN, session.user, decision.reason))
        return resolved

    # stations: the browsers (or VNC clients) attached through the bridge

    async def open_station(self, caller: Caller, session_id: str, mode: Mode, client: str,
                           signin: str | None = None, station_id: int | None = None) -> Station:
        """Attach a viewer. The user's own station takes the session over from any other.
        ``station_id``: the named station it is (the bridge checked its signed cookie)."""
        session = self.session_now(session_id)
        if session is None:
            raise UnknownSession(session_id)
        own = policy.owns(caller, session)
        action = Action.VIEW if mode == Mode.VIEW else Action.CONTROL
        decision = policy.may(caller, action, session)
        if not decision or (mode == Mode.OWN and not own):
            reason = decision.reason or "only the session's user may use it as a station"
            self._audit(caller, action, [session_id],
                        [self._result(Outcome(session_id, Status.FORBIDDEN, session.user, reason))],
                        allowed=False, detail={"mode": str(mode), "client": client})
            raise NotPermitted(reason)
        if session.state == SessionState.LOGGING_OFF:
            raise InvalidRequest(f"session {session_id} is logging off")
        station = Station(session_id, caller.user, mode, client, signin=signin)
        if mode == Mode.OWN:
            self.stations.close_all(session_id, TAKEN_OVER, Mode.OWN)
            pending = self._going_away.pop(session_id, None)
            if pending is not None:
                pending.cancel()
            name = None if station_id is None else self.station_book.attach(station_id, session)
            self._set(session.with_(state=SessionState.ACTIVE, client=client, station=name))
        else:
            self._audit(caller, action, [session_id],
                        [self._result(Outcome(session_id, Status.SHOWN, session.user))],
                        detail={"mode": str(mode), "client": client})
            if mode == Mode.CONTROL:
                self.bus.publish(Event("control-started", session_id, None, {"by": caller.user}))
        self.stations.add(station)
        self.store.record_connection(station.id, session_id, caller.user, str(mode), client,
                                     station.connected_at)
        return station

    def close_station(self, station: Station) -> None:
        """The bridge is gone (tab closed, network lost, taken over, session ended)."""
        self.stations.remove(station)
        with contextlib.suppress(StoreError):
            self.store.end_connection(station.id, station.session_id, time.time())
        if station.mode == Mode.CONTROL:
            self.bus.publish(Event("control-ended", station.session_id, None, {"by": station.user}))
        if station.mode == Mode.OWN and not self.stations.of(station.session_id, Mode.OWN):
            # A reload or a flaky network comes back within seconds: wait before saying so.
            self._going_away[station.session_id] = _background(
                self._mark_disconnected(station.session_id), f"station of session {station.session_id}")

    async def _mark_disconnected(self, session_id: str) -> None:
        await asyncio.sleep(STATION_GRACE_S)
        self._going_away.pop(session_id, None)
        session = self.store.session(session_id)
        if (session is not None and session.state == SessionState.ACTIVE
                and not self.stations.of(session_id, Mode.OWN)):
            self._set(session.with_(state=SessionState.DISCONNECTED, client=None, station=None))

    def input_allowed(self, station: Station) -> bool:
        """Checked for every input message a station sends: never while blocked."""
        return station.mode != Mode.VIEW and station.session_id not in self._blocked

    async def resize_screen(self, caller: Caller, station: Station, width: int,
                            height: int) -> tuple[int, int]:
        """The user's own station asks for a screen of its window's size (screensize.py)."""
        return await self.screens.request(caller, station, width, height)

    def _audit_resize(self, caller: Caller, session: Session, asked: tuple[int, int],
                      size: tuple[int, int]) -> None:
        self._audit(caller, Action.RESIZE, [session.id],
                    [self._result(Outcome(session.id, Status.RESIZED, session.user))],
                    detail={"asked": list(asked), "size": list(size)})

    async def open_rfb(self, session_id: str) -> socket.socket | None:
        """A connection to the session's RFB server, checked to be the session's own
        (non-blocking, for the station bridge); None when the session has no RFB server."""
        session = self.store.session(session_id)
        endpoint = self._backend(session).rfb_socket(session) if session is not None else None
        if endpoint is None:
            return None
        try:
            sock = await asyncio.to_thread(peer.connect, endpoint.path, endpoint.server,
                                           f"the screen of session {session_id}", 5.0)
        except OSError as exc:
            raise BackendError(f"session {session_id}: its screen does not answer: {exc}") from exc
        sock.setblocking(False)
        return sock

    # log-off, step by step

    def _begin_logoff(
        self, caller: Caller, session: Session, grace: int, force: bool, message: str | None
    ) -> asyncio.Task[Outcome]:
        running = self._logoffs.get(session.id)
        if running is not None and not running.done():
            if not force or (session.logoff and session.logoff.force):
                return running
            running.cancel()  # a forced log-off overtakes a polite one already under way
        now = time.time()
        before = session.state
        if before == SessionState.LOGGING_OFF:  # overtaken: whether someone is at it decides
            before = self.state_without_logoff(session)
        plan = LogoffPlan(caller.user, now, now + (0 if force else grace), force, message, str(before))
        session = self._set(session.with_(state=SessionState.LOGGING_OFF, logoff=plan))
        task = _background(self._run_logoff(session, before), f"log-off of session {session.id}")
        self._logoffs[session.id] = task
        return task

    def state_without_logoff(self, session: Session) -> SessionState:
        """What a session logging off was before (its plan says), else whether someone is at it."""
        before = session.logoff.before if session.logoff else None
        if before in (SessionState.ACTIVE, SessionState.DISCONNECTED):
            return SessionState(before)
        at_it = bool(self.stations.of(session.id, Mode.OWN))
        return SessionState.ACTIVE if at_it else SessionState.DISCONNECTED

    async def cancel_logoff(self, caller: Caller, target: Target) -> list[Outcome]:
        """Stop log-offs still in their grace period (logoff_cancel.py)."""
        return await logoff_cancel.cancel(self, caller, target)

    async def _run_logoff(self, session: Session, before: SessionState, recovered: bool = False) -> Outcome:
        """Warn, wait, close windows, end. Never raises: a failure is this session's result,
        and the session is put back as it was (``before``), still running, to be logged off again."""
        with essential():  # a log-off finished after a restart too
            return await self._run_logoff_steps(session, before, recovered)

    async def _run_logoff_steps(self, session: Session, before: SessionState, recovered: bool) -> Outcome:
        plan = session.logoff
        assert plan is not None
        try:
            backend = self._backend(session)
            if not plan.force:
                remaining = plan.deadline - time.time()
                if remaining > 0:
                    seconds = math.ceil(remaining)
                    text = plan.message or self.in_session(session, LOGOFF_NOTICE).format(seconds=seconds)
                    with contextlib.suppress(BackendError):
                        await backend.notify_logoff(session, seconds, text)
                    await asyncio.sleep(remaining)
                await self._close_politely(backend, session)
            await backend.end(session, self.settings.kill_after)
        except Exception as exc:  # BackendError, or a bug at the backend's edge: never stuck logging off
            if not isinstance(exc, BackendError):
                log.exception("log-off of session %s failed", session.id)
            return self._logoff_failed(session, before, exc)
        finally:
            if self._logoffs.get(session.id) is asyncio.current_task():  # not a forced successor
                del self._logoffs[session.id]
        self._forget(session.id, session.user)
        reason = EndReason.RECOVERED if recovered else EndReason.LOGOFF
        try:
            self.store.end_session(session, plan.requested_by, reason)
        except StoreError as exc:  # ended all the same; the next start finds it gone and says so
            log.error("session %s ended but its end could not be recorded: %s", session.id, exc)
            return Outcome(session.id, Status.FAILED, session.user, f"ended, but not recorded: {exc}")
        self.bus.publish(session_ended(session.id, str(reason), plan.requested_by))
        if recovered:
            outcome = Outcome(session.id, Status.ENDED, session.user,
                              "log-off finished after a daemon restart")
            with contextlib.suppress(StoreError):
                self._audit(SYSTEM, Action.LOGOFF, [session.id], [self._result(outcome)],
                            detail={"requested_by": plan.requested_by, "recovered": True})
        return Outcome(session.id, Status.ENDED, session.user)

    def _logoff_failed(self, session: Session, before: SessionState, exc: Exception) -> Outcome:
        """The backend could not end the session: it still runs, so say so (its state before the
        log-off, no plan) and audit that, rather than leave it logging off for ever."""
        reason = str(exc) if isinstance(exc, PolydeskError) else f"internal error: {exc!r}"
        log.warning("log-off of session %s failed: %s", session.id, reason)
        outcome = Outcome(session.id, Status.FAILED, session.user, reason)
        current = None
        try:
            current = self.store.session(session.id)
            if current is not None and current.state == SessionState.LOGGING_OFF:
                self._set(current.with_(state=before, logoff=None))
            self._audit(SYSTEM, Action.LOGOFF, [session.id], [self._result(outcome)],
                        detail={"requested_by": session.logoff.requested_by if session.logoff else None,
                                "restored_to": str(before)})
        except StoreError as store_error:
            log.error("session %s: its failed log-off could not be recorded: %s", session.id, store_error)
        watcher = self._watchers.get(session.id)
        if current is not None and (watcher is None or watcher.done()):
            self._watch(current)  # its watcher stood back for the log-off: watch it again
        return outcome

    async def _close_politely(self, backend: SessionBackend, session: Session) -> None:
        with contextlib.suppress(BackendError):
            if await backend.close_windows(session) == 0:
                return
            deadline = time.monotonic() + self.settings.close_wait
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if await backend.open_windows(session) == 0:
                    return

    # sessions the OS starts (logind): found, not logged on

    async def _discover(self, backend: DiscoveringBackend) -> None:
        async def found(discovered: Discovered) -> None:
            await self._discovered(backend, discovered)

        try:
            await backend.discover(found)
        except BackendError as exc:
            log.error("a session backend stopped reporting sessions: %s", exc)

    async def _discovered(self, backend: DiscoveringBackend, found: Discovered) -> None:
        """Record a session the backend found, once: a key already stored keeps its id."""
        name = backend.name
        async with self._lock(f"discover:{name}"):
            for known in self.store.sessions():
                if known.backend == name and known.backend_data.get("key") == found.key:
                    if known.id not in self._watchers and known.id not in self._logoffs:
                        self._watch(known)
                    return
            try:
                account = self.lookup(found.user)
                groups, uid, shell = account.groups, account.uid, account.shell
            except UnknownUser:  # a name the name service does not know: least privilege
                groups, uid, shell = frozenset(), found.uid, None
            decision = self._may_have_desktop(found.user, found.uid, shell)
            if not decision:  # root's SSH login, a display manager's greeter: not Polydesk's to show
                if found.key not in self._refused_keys:
                    self._refused_keys.add(found.key)
                    self._audit(SYSTEM, Action.LOGON, [], [], allowed=False, reason=decision.reason,
                                detail={"user": found.user, "uid": found.uid, "backend": name,
                                        "discovered": True})
                return
            session = Session(
                id=self.store.new_session_id(), user=found.user, uid=found.uid,
                role=policy.role_of(groups, uid, self.settings.admin_group, self.settings.dashboard_group),
                backend=name, state=SessionState.ACTIVE, logon_time=found.logon_time,
                display=found.display, client=found.client, backend_data={**found.data, "key": found.key},
            )
            session = self.store.put_session(session)
            self._watch(session)
            self.bus.publish(session_started(session))
            self._audit(SYSTEM, Action.LOGON, [session.id],
                        [self._result(Outcome(session.id, Status.STARTED, session.user))],
                        detail={"user": session.user, "backend": name, "discovered": True})

    # crashes

    def _watch(self, session: Session) -> None:
        self._watchers[session.id] = _background(self._watch_one(session), f"watching session {session.id}")

    async def _watch_one(self, session: Session) -> None:
        reason = await self._backend(session).wait_ended(session)
        if session.id in self._logoffs:
            return  # a log-off in progress finishes the session itself
        current = self.store.session(session.id)
        if current is not None and current.state != SessionState.LOGGING_OFF:
            self._watchers.pop(session.id, None)
            why = ("the user left the desktop" if reason == EndReason.LOGOUT
                   else "its display server exited")
            await self._ended_by_itself(current, reason, why)

    async def _ended_by_itself(self, session: Session, reason: EndReason, why: str) -> None:
        """Ended without a log-off: a crash, or the user logging out from inside."""
        backend = self.backends.get(session.backend)
        if backend is not None:
            with contextlib.suppress(BackendError):
                await backend.end(session, kill_after=0)
        self._forget(session.id, session.user)
        ended_by = session.user if reason == EndReason.LOGOUT else SYSTEM.user
        self.store.end_session(session, ended_by, reason)
        self.bus.publish(session_ended(session.id, str(reason), ended_by))
        outcome = Outcome(session.id, Status.ENDED, session.user, why)
        self._audit(SYSTEM, Action.LOGOFF, [session.id], [self._result(outcome)],
                    detail={"crashed": reason == EndReason.CRASHED, "reason": str(reason)})

    # small helpers

    def in_session(self, session: Session, message: str) -> str:
        """``message`` as ``session``'s user reads it: in the language their station asked for,
        else their desktop's, else the server's (i18n.session_language). For every text the
        daemon shows inside a session; what a person typed is shown as typed."""
        return session_gettext(session_language(session.language, session.user), message)

    def _end_signins(self, caller: Caller, session_id: str, user: str, reason: str) -> None:
        """The station goes back to its log-on form, as MultiPoint's does: the web sign-ins that
        were this session's own stations end (someone else ended or disconnected it)."""
        ended = self.stations.end_signins(session_id, reason)
        if ended:
            with contextlib.suppress(StoreError):  # ended all the same; a full disk loses the record
                self._audit(caller, Action.SIGNIN, [session_id], [],
                            detail={"op": "end", "user": user, "signins": ended, "reason": reason})

    def _forget(self, session_id: str, user: str) -> None:
        self._end_signins(SYSTEM, session_id, user, ENDED)  # the log-off itself is audited as its caller's
        self.stations.close_all(session_id, ENDED)
        watcher = self._watchers.pop(session_id, None)
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        self._locks.pop(session_id, None)
        self._idle.pop(session_id, None)
        self._idle_queries.pop(session_id, None)  # a query still running then keeps its answer

    def _set(self, session: Session) -> Session:
        session = self.store.put_session(session)
        if session.blocked:
            self._blocked.add(session.id)
        else:
            self._blocked.discard(session.id)
        self.bus.publish(session_changed(session))
        return session

    def _restation(self, old: str, new: str) -> None:
        """A station was renamed: the session at it shows the new name."""
        for session in self.store.sessions():
            if session.station == old:
                self._set(session.with_(station=new))

    def _may_have_desktop(self, name: str, uid: int, shell: str | None) -> policy.Decision:
        return policy.may_have_desktop(name, uid, shell, desktop_rules(self.settings.allowed_system_accounts))

    def session_now(self, session_id: str) -> Session | None:
        """The stored session, with its owner's role as their groups say now (role_cache_seconds)."""
        session = self.store.session(session_id)
        return None if session is None else self._role_now(session)

    def _sessions_now(self) -> list[Session]:
        return [self._role_now(s) for s in self.store.sessions()]

    def _role_now(self, session: Session) -> Session:
        """A user added to the admin group has an administrator's session from now on, one
        removed from it a standard one: who may act on a session follows. No await here, so
        nothing changes the session between reading it and storing its new role."""
        try:
            account = self.accounts.by_name(session.user)
            role = self._role_of(account) if account.uid == session.uid else Role.STANDARD
        except UnknownUser:  # the account is gone (or the name service down): least privilege
            role = Role.STANDARD
        if role == session.role:
            return session
        log.info("session %s of %s: role %s -> %s (its groups changed)", session.id, session.user,
                 session.role, role)
        updated = session.with_(role=role)
        try:
            return self._set(updated)
        except StoreError:  # a full disk: decide by the new role all the same, store it next time
            return updated

    def _role_of(self, account: Account) -> Role:
        return policy.role_of(account.groups, account.uid, self.settings.admin_group,
                              self.settings.dashboard_group)

    def _backend(self, session: Session) -> SessionBackend:
        backend = self.backends.get(session.backend)
        if backend is None:
            raise BackendError(
                f"session {session.id} is on backend {session.backend!r}, which is not running")
        return backend

    def _lock(self, key: str) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    async def _idle_seconds(self, session: Session) -> float | None:
        """Seconds since the session's last input. Only the first time waits for the backend (an
        X query each): after that the last answer is given at once, aged, while one query per
        session at a time refreshes it, so 50 clients listing at once never wait on X servers."""
        if session.id in self._idle:
            return self._idle_known(session)
        self._idle_known(session)  # starts the query
        return await asyncio.shield(self._idle_queries[session.id])

    def _idle_known(self, session: Session) -> float | None:
        """The last answer, aged; asks again in the background when it is older than IDLE_FRESH_S."""
        now = time.monotonic()
        cached = self._idle.get(session.id)
        if (cached is None or now - cached[0] >= IDLE_FRESH_S) and session.id not in self._idle_queries:
            self._idle_queries[session.id] = _background(self._query_idle(session),
                                                         f"idle time of session {session.id}")
        if cached is None or cached[1] is None:
            return None
        return cached[1] + (now - cached[0])

    async def _query_idle(self, session: Session) -> float | None:
        backend = self.backends.get(session.backend)
        try:
            idle = await asyncio.wait_for(backend.idle_seconds(session), 1) if backend else None
        except (BackendError, TimeoutError):
            idle = None
        if self._idle_queries.get(session.id) is asyncio.current_task():  # not forgotten meanwhile
            del self._idle_queries[session.id]
            self._idle[session.id] = (time.monotonic(), idle)
        return idle

    @staticmethod
    def _result(outcome: Outcome) -> dict[str, Any]:
        return {"id": outcome.id, "status": str(outcome.status), "user": outcome.user,
                "reason": outcome.reason}

    def _audit(
        self,
        caller: Caller,
        action: Action,
        targets: list[str],
        results: list[dict[str, Any]],
        *,
        allowed: bool = True,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        detail = dict(detail or {})
        if reason:
            detail["reason"] = reason
        self.store.append_audit(AuditRecord(
            time=time.time(), caller=caller.user, caller_uid=caller.uid, role=str(caller.role),
            via=caller.via, action=str(action), targets=targets, allowed=allowed,
            results=results, detail=detail,
        ))


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _whole(value: object) -> bool:
    """A whole number, as JSON from the fleet or a form may fail to give (bool is not one)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _background(work: Coroutine[Any, Any, T], what: str) -> asyncio.Task[T]:
    """A task of the manager's own: whatever it raises is logged, never left unretrieved."""
    task = asyncio.create_task(work)
    task.add_done_callback(functools.partial(_report, what))
    return task


def _report(what: str, task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", what, exc_info=task.exception())
