"""The manager's parts, shared by its use cases (one module per verb group).

The backends, the store, the bus and the settings come in by constructor (Manager builds one
Parts); the per-session state every verb group reads (locks, watchers, log-offs under way,
which sessions are blocked, idle times) lives here once, with the few steps they all take:
store a changed session and say so, read a session with its owner's role as it is now,
forget an ended session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping, Sequence

from polydesk.backends.base import DiscoveringBackend, SessionBackend
from polydesk.config.settings import Settings
from polydesk.core import policy
from polydesk.core.events import EventBus, session_changed
from polydesk.core.i18n import session_gettext, session_language
from polydesk.core.model import (
    SYSTEM,
    Account,
    Action,
    BackendError,
    Caller,
    Outcome,
    Role,
    Session,
    SessionState,
    StoreError,
    UnknownUser,
)
from polydesk.manager.audit import AuditLog
from polydesk.manager.idle import IdleTimes
from polydesk.manager.stations import ENDED, Stations
from polydesk.store.store import Store
from polydesk.system.accounts import AccountCache, desktop_rules

log = logging.getLogger(__name__)


class Parts:
    def __init__(self, backends: Sequence[SessionBackend], store: Store, bus: EventBus, settings: Settings,
                 lookup: Callable[[str], Account]) -> None:
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
        self.audit = AuditLog(store)
        self.stations = Stations()
        self.idle = IdleTimes(self.backends)
        self.locks: dict[str, asyncio.Lock] = {}
        self.watchers: dict[str, asyncio.Task[None]] = {}  # watch.py
        self.logoffs: dict[str, asyncio.Task[Outcome]] = {}  # logoff.py
        self.blocked: set[str] = set()  # read on every input message a station sends
        # Told when a session ends (True) or is disconnected (False): its projections end (projection.py)
        self.source_gone: Callable[[str, bool], None] = lambda session_id, ended: None

    def backend(self, session: Session) -> SessionBackend:
        backend = self.backends.get(session.backend)
        if backend is None:
            raise BackendError(
                f"session {session.id} is on backend {session.backend!r}, which is not running")
        return backend

    def lock(self, key: str) -> asyncio.Lock:
        return self.locks.setdefault(key, asyncio.Lock())

    def set(self, session: Session) -> Session:
        """Store a changed session and tell whoever follows the sessions."""
        session = self.store.put_session(session)
        if session.blocked:
            self.blocked.add(session.id)
        else:
            self.blocked.discard(session.id)
        self.bus.publish(session_changed(session))
        if session.state == SessionState.DISCONNECTED:
            self.source_gone(session.id, False)
        return session

    def restation(self, old: str, new: str) -> None:
        """A station was renamed: the session at it shows the new name."""
        for session in self.store.sessions():
            if session.station == old:
                self.set(session.with_(station=new))

    def in_session(self, session: Session, message: str) -> str:
        """``message`` as ``session``'s user reads it: in the language their station asked for,
        else their desktop's, else the server's (i18n.session_language). For every text the
        daemon shows inside a session; what a person typed is shown as typed."""
        return session_gettext(session_language(session.language, session.user), message)

    # roles

    def role_of(self, groups: frozenset[str], uid: int) -> Role:
        return policy.role_of(groups, uid, self.settings.admin_group, self.settings.dashboard_group)

    def may_have_desktop(self, name: str, uid: int, shell: str | None) -> policy.Decision:
        return policy.may_have_desktop(name, uid, shell, desktop_rules(self.settings.allowed_system_accounts))

    def session_now(self, session_id: str) -> Session | None:
        """The stored session, with its owner's role as their groups say now (role_cache_seconds)."""
        session = self.store.session(session_id)
        return None if session is None else self._role_now(session)

    def sessions_now(self) -> list[Session]:
        return [self._role_now(s) for s in self.store.sessions()]

    def _role_now(self, session: Session) -> Session:
        """A user added to the admin group has an administrator's session from now on, one
        removed from it a standard one: who may act on a session follows. No await here, so
        nothing changes the session between reading it and storing its new role."""
        try:
            account = self.accounts.by_name(session.user)
            role = self.role_of(account.groups, account.uid) if account.uid == session.uid else Role.STANDARD
        except UnknownUser:  # the account is gone (or the name service down): least privilege
            role = Role.STANDARD
        if role == session.role:
            return session
        log.info("session %s of %s: role %s -> %s (its groups changed)", session.id, session.user,
                 session.role, role)
        updated = session.with_(role=role)
        try:
            return self.set(updated)
        except StoreError:  # a full disk: decide by the new role all the same, store it next time
            return updated

    # the end of a session

    def end_signins(self, caller: Caller, session_id: str, user: str, reason: str) -> None:
        """The station goes back to its log-on form, as MultiPoint's does: the web sign-ins that
        were this session's own stations end (someone else ended or disconnected it)."""
        ended = self.stations.end_signins(session_id, reason)
        if ended:
            with contextlib.suppress(StoreError):  # ended all the same; a full disk loses the record
                self.audit.write(caller, Action.SIGNIN, [session_id], [],
                                 detail={"op": "end", "user": user, "signins": ended, "reason": reason})

    def forget(self, session_id: str, user: str) -> None:
        self.end_signins(SYSTEM, session_id, user, ENDED)  # the log-off itself is audited as its caller's
        self.stations.close_all(session_id, ENDED)
        self.source_gone(session_id, True)
        watcher = self.watchers.pop(session_id, None)
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        self.locks.pop(session_id, None)
        self.idle.forget(session_id)
