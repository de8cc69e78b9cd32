"""Log-off and its cancel: warn, wait the grace period, close windows, end.

A log-off waits its grace period in a task of the manager's, with its plan stored in the
session so that a restart finishes it. Cancelling stops that task, stores the session as it
was before (its plan remembers active or disconnected) without a plan, and takes the
countdown away from the user's screen. Cancel is checked by the roles (policy: whoever may
log the session off, except that nobody undoes someone else's log-off of their own session
unless an administrator) and audited like every action on sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass

from polydesk.backends.base import SessionBackend
from polydesk.core import policy
from polydesk.core.events import session_ended
from polydesk.core.i18n import N_
from polydesk.core.model import (
    SYSTEM,
    Action,
    BackendError,
    Caller,
    EndReason,
    InvalidRequest,
    LogoffPlan,
    Outcome,
    PolydeskError,
    Session,
    SessionState,
    Status,
    StoreError,
    Target,
)
from polydesk.core.texts import check_text
from polydesk.manager.each import each, whole
from polydesk.manager.parts import Parts
from polydesk.manager.stations import Mode
from polydesk.manager.tasks import background
from polydesk.manager.watch import Watch
from polydesk.store.store import essential

log = logging.getLogger(__name__)

# Shown in the session, in its user's language (in_session), whoever asked.
LOGOFF_NOTICE = N_("You will be logged off in {seconds} seconds. Save your work now.")


@dataclass(frozen=True)
class LogoffRequest:
    """A log-off as asked (Manager.logoff's options): checked here, as they may come from the fleet."""

    grace: int | None = None  # None: the setting logoff_grace
    force: bool = False
    message: str | None = None
    what_if: bool = False
    wait: bool = True
    wait_limit: float | None = None


class Logoffs:
    def __init__(self, parts: Parts, watch: Watch) -> None:
        self.parts = parts
        self.watch = watch

    async def logoff(self, caller: Caller, target: Target, request: LogoffRequest) -> list[Outcome]:
        """End sessions. With ``wait``, answer once they have ended, or after ``wait_limit``
        seconds with those still under way reported as logging-off."""
        force, message = request.force, request.message
        grace = self.parts.settings.logoff_grace if request.grace is None else request.grace
        if not (whole(grace) and grace >= 0):
            raise InvalidRequest("grace: must be 0 or more whole seconds")
        if not isinstance(force, bool):
            raise InvalidRequest("force: must be true or false")
        check_text("message", message)

        async def act(session: Session) -> Outcome:
            if request.what_if:
                return Outcome(session.id, Status.WOULD_END, session.user)
            # Users logging themselves off need no warning: only the polite close (unless asked).
            own_grace = (request.grace or 0) if policy.owns(caller, session) else grace
            task = self.begin(caller, session, own_grace, force, message)
            if request.wait:
                # Waiting is no hold on the session (each()'s lock): a cancel, or a forced
                # log-off, may come in the grace period.
                lock = self.parts.lock(session.id)
                lock.release()
                try:
                    return await asyncio.wait_for(asyncio.shield(task), request.wait_limit)
                except TimeoutError:
                    pass
                except asyncio.CancelledError:
                    if not task.cancelled():  # this request was cancelled, not the log-off
                        raise
                    return Outcome(session.id, Status.LOGOFF_CANCELLED, session.user)
                finally:
                    await lock.acquire()
            return Outcome(session.id, Status.LOGGING_OFF, session.user)

        detail = {"grace": grace, "force": force, "what_if": request.what_if, "message": message}
        return await each(self.parts, caller, Action.LOGOFF, target, act, detail, allow_logging_off=True)

    async def cancel(self, caller: Caller, target: Target) -> list[Outcome]:
        """Stop log-offs still in their grace period. One Outcome per session:
        logoff-cancelled, or why not (not logging off, too late)."""

        async def act(session: Session) -> Outcome:
            plan = session.logoff
            if session.state != SessionState.LOGGING_OFF or plan is None:
                return Outcome(session.id, Status.FAILED, session.user, "the session is not logging off")
            if plan.force or time.time() >= plan.deadline:
                # its windows are being closed: what a cancel put back would be half a desktop
                return Outcome(session.id, Status.FAILED, session.user,
                               "too late: the grace period is over and the session is closing")
            task = self.parts.logoffs.pop(session.id, None)
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)  # its steps are over before we go on
            self.parts.set(session.with_(state=self.state_without_logoff(session), logoff=None))
            with contextlib.suppress(BackendError):  # a notice left behind closes itself at zero
                await self.parts.backend(session).withdraw_logoff_notice(session)
            return Outcome(session.id, Status.LOGOFF_CANCELLED, session.user)

        if target.all and target.scope is None:
            # "all" is every session logging off that the caller may put back, never their own:
            # the others are not news, and would each be a failure in the results
            target = Target(ids=tuple(
                s.id for s in self.parts.store.sessions()
                if s.state == SessionState.LOGGING_OFF and not policy.owns(caller, s)
                and policy.may(caller, Action.CANCEL_LOGOFF, s)))
            if not target.ids:
                return []
        return await each(self.parts, caller, Action.CANCEL_LOGOFF, target, act, {},
                          allow_logging_off=True)

    def begin(
        self, caller: Caller, session: Session, grace: int, force: bool, message: str | None
    ) -> asyncio.Task[Outcome]:
        running = self.parts.logoffs.get(session.id)
        if running is not None and not running.done():
            if not force or (session.logoff and session.logoff.force):
                return running
            running.cancel()  # a forced log-off overtakes a polite one already under way
        now = time.time()
        before = session.state
        if before == SessionState.LOGGING_OFF:  # overtaken: whether someone is at it decides
            before = self.state_without_logoff(session)
        plan = LogoffPlan(caller.user, now, now + (0 if force else grace), force, message, str(before))
        session = self.parts.set(session.with_(state=SessionState.LOGGING_OFF, logoff=plan))
        self.resume(session, before)
        return self.parts.logoffs[session.id]

    def resume(self, session: Session, before: SessionState, recovered: bool = False) -> None:
        """Carry out the session's stored plan in the background (after a restart: ``recovered``)."""
        self.parts.logoffs[session.id] = background(self._run(session, before, recovered),
                                                    f"log-off of session {session.id}")

    def state_without_logoff(self, session: Session) -> SessionState:
        """What a session logging off was before (its plan says), else whether someone is at it."""
        before = session.logoff.before if session.logoff else None
        if before in (SessionState.ACTIVE, SessionState.DISCONNECTED):
            return SessionState(before)
        at_it = bool(self.parts.stations.of(session.id, Mode.OWN))
        return SessionState.ACTIVE if at_it else SessionState.DISCONNECTED

    async def _run(self, session: Session, before: SessionState, recovered: bool) -> Outcome:
        """Warn, wait, close windows, end. Never raises: a failure is this session's result,
        and the session is put back as it was (``before``), still running, to be logged off again."""
        with essential():  # a log-off finished after a restart too
            return await self._steps(session, before, recovered)

    async def _steps(self, session: Session, before: SessionState, recovered: bool) -> Outcome:
        plan = session.logoff
        assert plan is not None
        try:
            backend = self.parts.backend(session)
            if not plan.force:
                remaining = plan.deadline - time.time()
                if remaining > 0:
                    seconds = math.ceil(remaining)
                    text = plan.message or self.parts.in_session(session, LOGOFF_NOTICE).format(
                        seconds=seconds)
                    with contextlib.suppress(BackendError):
                        await backend.notify_logoff(session, seconds, text)
                    await asyncio.sleep(remaining)
                await self._close_politely(backend, session)
            await backend.end(session, self.parts.settings.kill_after)
        except Exception as exc:  # BackendError, or a bug at the backend's edge: never stuck logging off
            if not isinstance(exc, BackendError):
                log.exception("log-off of session %s failed", session.id)
            return self._failed(session, before, exc)
        finally:
            if self.parts.logoffs.get(session.id) is asyncio.current_task():  # not a forced successor
                del self.parts.logoffs[session.id]
        self.parts.forget(session.id, session.user)
        reason = EndReason.RECOVERED if recovered else EndReason.LOGOFF
        try:
            self.parts.store.end_session(session, plan.requested_by, reason)
        except StoreError as exc:  # ended all the same; the next start finds it gone and says so
            log.error("session %s ended but its end could not be recorded: %s", session.id, exc)
            return Outcome(session.id, Status.FAILED, session.user, f"ended, but not recorded: {exc}")
        self.parts.bus.publish(session_ended(session.id, str(reason), plan.requested_by))
        if recovered:
            outcome = Outcome(session.id, Status.ENDED, session.user,
                              "log-off finished after a daemon restart")
            with contextlib.suppress(StoreError):
                self.parts.audit.one(SYSTEM, Action.LOGOFF, outcome,
                                     detail={"requested_by": plan.requested_by, "recovered": True})
        return Outcome(session.id, Status.ENDED, session.user)

    def _failed(self, session: Session, before: SessionState, exc: Exception) -> Outcome:
        """The backend could not end the session: it still runs, so say so (its state before the
        log-off, no plan) and audit that, rather than leave it logging off for ever."""
        reason = str(exc) if isinstance(exc, PolydeskError) else f"internal error: {exc!r}"
        log.warning("log-off of session %s failed: %s", session.id, reason)
        outcome = Outcome(session.id, Status.FAILED, session.user, reason)
        current = None
        try:
            current = self.parts.store.session(session.id)
            if current is not None and current.state == SessionState.LOGGING_OFF:
                self.parts.set(current.with_(state=before, logoff=None))
            self.parts.audit.one(SYSTEM, Action.LOGOFF, outcome,
                                 detail={"requested_by": session.logoff.requested_by if session.logoff
                                         else None, "restored_to": str(before)})
        except StoreError as store_error:
            log.error("session %s: its failed log-off could not be recorded: %s", session.id, store_error)
        watcher = self.parts.watchers.get(session.id)
        if current is not None and (watcher is None or watcher.done()):
            self.watch.watch(current)  # its watcher stood back for the log-off: watch it again
        return outcome

    async def _close_politely(self, backend: SessionBackend, session: Session) -> None:
        with contextlib.suppress(BackendError):
            if await backend.close_windows(session) == 0:
                return
            deadline = time.monotonic() + self.parts.settings.close_wait
            while time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                if await backend.open_windows(session) == 0:
                    return
