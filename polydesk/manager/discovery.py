"""Sessions the OS starts (logind): found, not logged on.

A discovering backend reports each session it finds; the first time a session is seen it is
recorded (its key kept, so a restart finds the same id), watched and published; a session
that may not have a desktop in Polydesk (root's SSH login, a greeter) is left out, audited once.
"""

from __future__ import annotations

import asyncio
import logging

from polydesk.backends.base import Discovered, DiscoveringBackend
from polydesk.core.events import session_started
from polydesk.core.model import (
    SYSTEM,
    Action,
    BackendError,
    Outcome,
    Session,
    SessionState,
    Status,
    UnknownUser,
)
from polydesk.manager.parts import Parts
from polydesk.manager.tasks import background
from polydesk.manager.watch import Watch

log = logging.getLogger(__name__)


class Discovery:
    def __init__(self, parts: Parts, watch: Watch) -> None:
        self.parts = parts
        self.watch = watch
        self.tasks: list[asyncio.Task[None]] = []
        self._refused_keys: set[str] = set()  # discovered sessions refused a place (audited once)

    def follow(self, backend: DiscoveringBackend) -> None:
        self.tasks.append(background(self._discover(backend), f"discovery of backend {backend.name}"))

    async def _discover(self, backend: DiscoveringBackend) -> None:
        async def found(discovered: Discovered) -> None:
            await self._discovered(backend, discovered)

        try:
            await backend.discover(found)
        except BackendError as exc:
            log.error("a session backend stopped reporting sessions: %s", exc)

    async def _discovered(self, backend: DiscoveringBackend, found: Discovered) -> None:
        """Record a session the backend found, once: a key already stored keeps its id."""
        parts, name = self.parts, backend.name
        async with parts.lock(f"discover:{name}"):
            for known in parts.store.sessions():
                if known.backend == name and known.backend_data.get("key") == found.key:
                    if not self.watch.watching(known.id):
                        self.watch.watch(known)
                    return
            try:
                account = parts.lookup(found.user)
                groups, uid, shell = account.groups, account.uid, account.shell
            except UnknownUser:  # a name the name service does not know: least privilege
                groups, uid, shell = frozenset(), found.uid, None
            decision = parts.may_have_desktop(found.user, found.uid, shell)
            if not decision:  # root's SSH login, a display manager's greeter: not Polydesk's to show
                if found.key not in self._refused_keys:
                    self._refused_keys.add(found.key)
                    parts.audit.write(SYSTEM, Action.LOGON, [], [], allowed=False, reason=decision.reason,
                                      detail={"user": found.user, "uid": found.uid, "backend": name,
                                              "discovered": True})
                return
            session = Session(
                id=parts.store.new_session_id(), user=found.user, uid=found.uid,
                role=parts.role_of(groups, uid), backend=name, state=SessionState.ACTIVE,
                logon_time=found.logon_time, display=found.display, client=found.client,
                backend_data={**found.data, "key": found.key},
            )
            session = parts.store.put_session(session)
            self.watch.watch(session)
            parts.bus.publish(session_started(session))
            parts.audit.one(SYSTEM, Action.LOGON, Outcome(session.id, Status.STARTED, session.user),
                            detail={"user": session.user, "backend": name, "discovered": True})
