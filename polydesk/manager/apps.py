"""Applications in sessions: launch a program or open an address on sessions, list the
applications of one, close one (by pid) or every one of a name (on sessions).

Roles as for every action on sessions (``policy``: a standard user only in their own session,
a Dashboard user never in an administrator's); each request is audited with the command or
address. What a Dashboard user may launch in others' sessions follows the ``launch_allowed``
setting. The backend does the work (``backends/xvnc/apps.py``): an argument vector, never a
shell; only processes of the session are ever signalled.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from polydesk.core import policy
from polydesk.core.apps import LAUNCH_LISTED, App, check_argv, check_desktop_id, check_url
from polydesk.core.model import (
    Action,
    Caller,
    InvalidRequest,
    NotPermitted,
    Outcome,
    Role,
    Session,
    Status,
    Target,
    UnknownName,
    UnknownSession,
    UnknownUser,
)
from polydesk.core.texts import check_text
from polydesk.manager.each import each, whole
from polydesk.manager.parts import Parts
from polydesk.system.desktop_entries import Entry, icon_png, installed

ENTRIES_TTL = 60.0  # seconds the list of installed applications is kept before it is read again
_HOW = {"closed": Status.CLOSED, "terminated": Status.TERMINATED, "killed": Status.KILLED}


class Apps:
    def __init__(self, parts: Parts) -> None:
        self.parts = parts
        self._entries: list[Entry] = []
        self._read_at = -ENTRIES_TTL

    # ------------------------------------------------------------ installed applications

    def installed(self) -> list[Entry]:
        """The applications installed on the host (their .desktop files), read at most once a minute."""
        now = time.monotonic()
        if now - self._read_at >= ENTRIES_TTL:
            self._entries, self._read_at = installed(), now
        return self._entries

    def icon(self, app_id: str) -> bytes | None:
        entry = self._entry(check_desktop_id(app_id))
        return icon_png(entry.icon)

    def _entry(self, app_id: str) -> Entry:
        for entry in self.installed():
            if entry.id == app_id:
                return entry
        raise UnknownName(f"app: no application {app_id!r} is installed on this host")

    # ------------------------------------------------------------ launch

    async def launch(self, caller: Caller, target: Target, *, argv: object = None, url: object = None,
                     app: object = None) -> list[Outcome]:
        """Start a program (``argv``), an installed application (``app``, a .desktop id) or open an
        address (``url``, with xdg-open) on the target sessions: one of the three."""
        given = [name for name, value in (("argv", argv), ("url", url), ("app", app)) if value is not None]
        if len(given) != 1:
            raise InvalidRequest('give exactly one of "argv", "url" and "app"')
        detail: dict[str, Any]
        if app is not None:
            entry = self._entry(check_desktop_id(app))
            vector, detail, listed = list(entry.argv), {"app": entry.id, "argv": list(entry.argv)}, True
        elif url is not None:
            address = check_url(url)
            # One argument: xdg-open gets the address whole (check_url: never an option).
            vector, detail = ["xdg-open", address], {"url": address}
            listed = address.split(":", 1)[0].lower() in ("http", "https")
        else:
            vector = check_argv(argv)
            detail, listed = {"argv": vector}, False

        async def act(session: Session) -> Outcome:
            if not listed and not self._may_launch_anything(caller, session):
                return Outcome(session.id, Status.FORBIDDEN, session.user,
                               "on this host Dashboard users may launch only installed applications "
                               "and web addresses in others' sessions (setting launch_allowed)")
            try:
                account = self.parts.accounts.by_name(session.user)
            except UnknownUser:
                return Outcome(session.id, Status.FAILED, session.user, f"no account {session.user!r}")
            if account.uid != session.uid:
                return Outcome(session.id, Status.FAILED, session.user,
                               f"the account {session.user!r} has another uid than its session")
            pid = await self.parts.backend(session).launch(session, account, vector)
            return Outcome(session.id, Status.LAUNCHED, session.user, f"pid {pid}")

        return await each(self.parts, caller, Action.LAUNCH, target, act, detail)

    def _may_launch_anything(self, caller: Caller, session: Session) -> bool:
        """The launch_allowed setting binds Dashboard users in other users' sessions."""
        return (self.parts.settings.launch_allowed != LAUNCH_LISTED or caller.role != Role.DASHBOARD
                or policy.owns(caller, session))

    # ------------------------------------------------------------ list

    async def apps(self, caller: Caller, session_id: str) -> list[App]:
        """The application windows of one session, named by their .desktop Name where one matches."""
        session = self.parts.session_now(session_id)
        if session is None:
            raise UnknownSession(session_id)
        decision = policy.may(caller, Action.APPS, session)
        if not decision:
            raise NotPermitted(decision.reason)
        found = await self.parts.backend(session).apps(session)
        return [self._named(app) for app in found]

    def _named(self, app: App) -> App:
        entry = self._entry_of(app.wm_class.casefold()) if app.wm_class else None
        if entry is None:
            return app
        return App(app.window, app.title, entry.name, app.wm_class, app.pid, app.pid_source, app.start,
                   app.started_at)

    def _entry_of(self, wm_class: str) -> Entry | None:
        """The installed application whose windows have this class: its StartupWMClass says so,
        else its file or its program has that name (a terminal application's program is the terminal's)."""
        entries = self.installed()
        for entry in entries:
            if entry.wm_class and entry.wm_class.casefold() == wm_class:
                return entry
        for entry in entries:
            program = entry.argv[0].rsplit("/", 1)[-1].casefold()
            if wm_class in (entry.id.removesuffix(".desktop").casefold(), program):
                return entry
        return None

    # ------------------------------------------------------------ close

    async def close(self, caller: Caller, target: Target, *, pid: object = None, start: object = None,
                    name: object = None) -> list[Outcome]:
        """Close one application (``pid``, and ``start`` as listed) of one session, or every
        application called ``name`` on the target sessions: politely, then SIGTERM, then SIGKILL."""
        if (pid is None) == (name is None):
            raise InvalidRequest('give "pid" (one session) or "name"')
        if pid is not None and not (whole(pid) and isinstance(pid, int) and pid > 1):
            raise InvalidRequest("pid: must be a process id")
        if start is not None and not (whole(start) and isinstance(start, int) and start >= 0):
            raise InvalidRequest("start: must be the start time the list gave")
        if pid is not None and (target.all or target.own or len(target.ids) != 1):
            raise InvalidRequest('"pid" goes with exactly one session id')
        wanted = check_text("name", name, max_length=200, required=name is not None)
        wait, kill_after = self.parts.settings.close_wait, self.parts.settings.kill_after

        async def close_one(session: Session, app_pid: int, app_start: int | None) -> Status:
            how = await self.parts.backend(session).close_app(session, app_pid, app_start, wait, kill_after)
            return _HOW.get(how, Status.CLOSED)

        async def act(session: Session) -> Outcome:
            if pid is not None:
                assert isinstance(pid, int)
                status = await close_one(session, pid, start if isinstance(start, int) else None)
                return Outcome(session.id, status, session.user, f"pid {pid}")
            assert wanted is not None
            key = wanted.casefold()
            running = [self._named(a) for a in await self.parts.backend(session).apps(session)]
            chosen = {(a.pid, a.start) for a in running
                      if a.pid and key in (a.name.casefold(), a.wm_class.casefold())}
            if not chosen:
                return Outcome(session.id, Status.NOTHING, session.user,
                               f"no application {wanted!r} is running")
            statuses = await asyncio.gather(*(close_one(session, p, s) for p, s in sorted(chosen)))
            worst = max(statuses, key=list(_HOW.values()).index)
            pids = ", ".join(str(p) for p, _ in sorted(chosen))
            return Outcome(session.id, worst, session.user, f"pid {pids}")

        detail = {"pid": pid, "start": start} if pid is not None else {"name": wanted}
        return await each(self.parts, caller, Action.CLOSE_APP, target, act, detail)
