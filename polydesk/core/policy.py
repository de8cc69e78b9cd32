"""Who may do what to whom. Pure: a table and a function over model values.

The table is MultiPoint's account types mapped onto Polydesk roles:

| caller    | own session              | standard user's | Dashboard user's | administrator's |
|-----------|--------------------------|-----------------|------------------|-----------------|
| standard  | logoff, disconnect, view, apps, chat | -   | -                | -               |
| dashboard | all but block, project   | all             | all              | -               |
| admin     | all but block, project   | all             | all              | all             |

"All" is logoff, disconnect, block, unblock, message, view, control, project (onto the
session's station), stop projecting, and the applications' launch, apps (list) and close-app;
"apps" in the first row is those three; and chat. Everyone chats in their own session (as its
user: the student's side of the conversation, manager/chat.py). Nobody blocks or projects onto
their own session (they would lock themselves out, or hide their own desktop). Who may log a session off
may cancel that log-off while it waits, except a log-off of one's own session that
someone else asked for (a student does not undo the teacher's; administrators may).
Listing the audit
log and creating tokens are for administrators; logging a session on is for
the account itself and administrators. Stations and groups are seen and groups
changed by Dashboard users and administrators; only administrators rename stations.
"""

from __future__ import annotations

from dataclasses import dataclass

from polydesk.core.model import Action, Caller, Role, Session

_ON_OTHERS = frozenset(
    {
        Action.LOGOFF,
        Action.DISCONNECT,
        Action.BLOCK,
        Action.UNBLOCK,
        Action.MESSAGE,
        Action.VIEW,
        Action.CONTROL,
        Action.PROJECT,
        Action.STOP_PROJECTING,
        Action.WEB_LIMIT,  # as block: never one's own session
        Action.LAUNCH,
        Action.APPS,
        Action.CLOSE_APP,
        Action.CHAT,  # as message; in one's own session, the user's side of the conversation
    }
)
# A block would lock oneself out; a projection onto one's own station would hide one's desktop;
# a web limit is the teacher's on others (as block).
_NOT_ON_OWN = frozenset({Action.BLOCK, Action.PROJECT, Action.STOP_PROJECTING, Action.WEB_LIMIT})
# Applications: a standard user starts, lists and closes them in their own session only.
_APPS = frozenset({Action.LAUNCH, Action.APPS, Action.CLOSE_APP})
# RESIZE is only ever one's own: a watcher's window never changes the size of the student's screen.
_ON_OWN: dict[Role, frozenset[Action]] = {
    Role.STANDARD: frozenset({Action.LOGOFF, Action.DISCONNECT, Action.VIEW, Action.CONTROL, Action.RESIZE,
                              Action.CHAT}) | _APPS,
    Role.DASHBOARD: _ON_OTHERS - _NOT_ON_OWN | {Action.RESIZE},
    Role.ADMIN: _ON_OTHERS - _NOT_ON_OWN | {Action.RESIZE},
}
# Which owners' sessions each role may act on (other than its own).
_OVER: dict[Role, frozenset[Role]] = {
    Role.STANDARD: frozenset(),
    Role.DASHBOARD: frozenset({Role.STANDARD, Role.DASHBOARD}),
    Role.ADMIN: frozenset({Role.STANDARD, Role.DASHBOARD, Role.ADMIN}),
}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.allowed


ALLOW = Decision(True)


def owns(caller: Caller, session: Session) -> bool:
    return caller.uid == session.uid


def may(caller: Caller, action: Action, session: Session) -> Decision:
    """May ``caller`` do ``action`` to ``session``? The reason says why not."""
    if action == Action.CANCEL_LOGOFF:
        return _may_cancel_logoff(caller, session)
    if owns(caller, session):
        if action in _ON_OWN[caller.role]:
            return ALLOW
        if action == Action.BLOCK:
            return Decision(False, "you cannot block your own session")
        if action in (Action.PROJECT, Action.STOP_PROJECTING):
            return Decision(False, "you cannot project onto your own session")
        if action == Action.WEB_LIMIT:
            return Decision(False, "you cannot limit your own session's web access")
        return Decision(False, f"a {caller.role} user may not {action} sessions")
    if action not in _ON_OTHERS or caller.role == Role.STANDARD:
        return Decision(False, f"session {session.id} belongs to another user")
    if session.role not in _OVER[caller.role]:
        return Decision(False, f"only administrators may {action} an {session.role} session")
    return ALLOW


def _may_cancel_logoff(caller: Caller, session: Session) -> Decision:
    decision = may(caller, Action.LOGOFF, session)
    asked_by = session.logoff.requested_by if session.logoff else None
    if (decision and owns(caller, session) and asked_by not in (None, caller.user)
            and caller.role != Role.ADMIN):
        return Decision(False, f"{asked_by} is logging your session off: "
                               "only they or a Dashboard user can cancel it")
    return decision


def may_see(caller: Caller, session: Session) -> bool:
    """Listing: standard users see only their own session; the others see all."""
    return owns(caller, session) or caller.role != Role.STANDARD


def may_logon(caller: Caller, user: str) -> Decision:
    if caller.user == user or caller.role == Role.ADMIN:
        return ALLOW
    return Decision(False, "only administrators may log on another user")


@dataclass(frozen=True)
class DesktopRules:
    """Which accounts may have a desktop: the system's own line between people and services."""

    uid_min: int  # UID_MIN of /etc/login.defs: below it, system accounts
    login_shells: frozenset[str]  # /etc/shells: nologin and false are not there
    allowed: frozenset[str] = frozenset()  # setting allowed_system_accounts: given one anyway


def may_have_desktop(name: str, uid: int, shell: str | None, rules: DesktopRules) -> Decision:
    """Desktops are for people. A desktop of root would make every administrator of Polydesk
    root (the station bridge types as the session's user); one of a service account would hand
    that service's files to whoever holds the session. ``shell`` None: not known (unchecked)."""
    if name in rules.allowed:
        return ALLOW
    if uid == 0:
        return Decision(False, f"{name!r} is the superuser (uid 0): Polydesk gives it no desktop")
    if uid < rules.uid_min:
        return Decision(False, f"{name!r} is a system account (uid {uid}, below UID_MIN {rules.uid_min}): "
                               "Polydesk gives it no desktop")
    if shell is not None and shell not in rules.login_shells:
        return Decision(False, f"{name!r} has no login shell ({shell or 'none'} is not in /etc/shells): "
                               "Polydesk gives it no desktop")
    return ALLOW


def may_global(caller: Caller, action: Action) -> Decision:
    """Actions not about one session: reading the audit log, making tokens."""
    if action in (Action.AUDIT, Action.TOKEN, Action.SIGNIN):
        if caller.role == Role.ADMIN:
            return ALLOW
        return Decision(False, f"only administrators may use {action}")
    if action == Action.LIST:
        return ALLOW
    if action == Action.RENAME_STATION:
        if caller.role == Role.ADMIN:
            return ALLOW
        return Decision(False, "only administrators may rename stations")
    if action in (Action.STATIONS, Action.GROUPS, Action.WEB_LISTS):
        if caller.role != Role.STANDARD:
            return ALLOW
        return Decision(False, f"only Dashboard users and administrators may use {action}")
    return Decision(False, f"{action} is an action on sessions")


def role_of(groups: frozenset[str], uid: int, admin_group: str, dashboard_group: str) -> Role:
    """Roles come from Unix groups; root is always an administrator."""
    if uid == 0 or admin_group in groups:
        return Role.ADMIN
    if dashboard_group in groups:
        return Role.DASHBOARD
    return Role.STANDARD
