"""The product's nouns: sessions, their states, roles, callers, outcomes and errors.

Pure: imports nothing of the project. Everything else speaks in these words.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a noun of its own module (websites.py), which raises InvalidRequest from here
    from polydesk.core.websites import WebLimit


class Role(enum.StrEnum):
    STANDARD = "standard"
    DASHBOARD = "dashboard"
    ADMIN = "admin"


class SessionState(enum.StrEnum):
    ACTIVE = "active"
    DISCONNECTED = "disconnected"
    LOGGING_OFF = "logging-off"
    ENDED = "ended"


# Which state may follow which. A session never comes back from ENDED; a log-off under way
# ends it, or is cancelled (or fails) and puts it back as it was (active or disconnected).
TRANSITIONS: dict[SessionState, frozenset[SessionState]] = {
    SessionState.ACTIVE: frozenset(
        {SessionState.DISCONNECTED, SessionState.LOGGING_OFF, SessionState.ENDED}
    ),
    SessionState.DISCONNECTED: frozenset(
        {SessionState.ACTIVE, SessionState.LOGGING_OFF, SessionState.ENDED}
    ),
    SessionState.LOGGING_OFF: frozenset(
        {SessionState.ACTIVE, SessionState.DISCONNECTED, SessionState.ENDED}
    ),
    SessionState.ENDED: frozenset(),
}


def can_transition(old: SessionState, new: SessionState) -> bool:
    return new == old or new in TRANSITIONS[old]


class Action(enum.StrEnum):
    """Everything a caller can ask for; each one is checked by policy and audited."""

    LIST = "list"
    LOGON = "logon"
    LOGOFF = "logoff"
    CANCEL_LOGOFF = "cancel-logoff"
    DISCONNECT = "disconnect"
    BLOCK = "block"
    UNBLOCK = "unblock"
    MESSAGE = "message"
    VIEW = "view"
    CONTROL = "control"
    RESIZE = "resize"  # a station's own browser sizes its session's screen
    AUDIT = "audit"
    TOKEN = "token"
    SIGNIN = "signin"  # web sign-ins: ended with a station's session, log-on holds cleared
    STATIONS = "stations"  # list the stations (station_book.py)
    RENAME_STATION = "rename-station"
    GROUPS = "groups"  # read and change the saved groups of students and the card order (groups.py)
    PROJECT = "project"  # show a session's screen at other sessions' stations (projection.py)
    STOP_PROJECTING = "stop-projecting"
    WEB_LIMIT = "web-limit"  # limit a session's web access, or end the limit (manager/weblimits.py)
    WEB_LISTS = "web-lists"  # read and change the saved lists of sites ("Exam", "Research")
    LAUNCH = "launch"  # start a program, or open an address, in sessions (apps.py)
    APPS = "apps"  # list the applications running in a session
    CLOSE_APP = "close-app"  # close one application of a session, politely, then forcibly
    CHAT = "chat"  # write in a session's conversation, raise or lower its hand (manager/chat.py)


# The actions that change a session and so take {"ids": [...]} or {"all": true}.
SESSION_ACTIONS = (
    Action.LOGOFF,
    Action.CANCEL_LOGOFF,
    Action.DISCONNECT,
    Action.BLOCK,
    Action.UNBLOCK,
    Action.MESSAGE,
    Action.PROJECT,
    Action.STOP_PROJECTING,
    Action.LAUNCH,
    Action.CLOSE_APP,
)


class EndReason(enum.StrEnum):
    LOGOFF = "logoff"  # ended through Polydesk (CLI, API, Dashboard)
    LOGOUT = "logout"  # the user left their desktop from inside it
    CRASHED = "crashed"  # the display server died
    RECOVERED = "recovered"  # finished after the daemon died in the middle of a log-off


@dataclass(frozen=True)
class Account:
    """A Unix account as the policy needs it."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str
    groups: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Caller:
    """Who asks. Known from SO_PEERCRED, a web log-on or a token; never from the request body."""

    user: str
    uid: int
    role: Role
    via: str = "cli"  # cli | web | token | system


SYSTEM = Caller(user="polydesk", uid=0, role=Role.ADMIN, via="system")


@dataclass(frozen=True)
class LogoffPlan:
    """A log-off in progress, persisted so a daemon killed in the middle finishes it."""

    requested_by: str
    requested_at: float
    deadline: float  # when the grace period ends (epoch seconds)
    force: bool
    message: str | None = None
    before: str | None = None  # the state a cancelled log-off puts back (None: plans of older versions)


@dataclass(frozen=True)
class Projection:
    """What a projection target's station shows instead of its own desktop: the screen of
    session ``source`` (of ``source_user``), projected by ``by`` since ``since``."""

    source: str
    source_user: str
    by: str
    since: float


@dataclass(frozen=True)
class Session:
    id: str
    user: str
    uid: int
    role: Role  # the owner's role at logon, which decides who may act on it
    backend: str  # where it runs: "xvnc", "logind", "fake" (docs/architecture.md: glossary)
    state: SessionState
    logon_time: float
    display: str | None = None
    blocked: bool = False
    block_message: str | None = None
    block_undone: int = 0  # times something undid this block and the daemon put it back
    client: str | None = None
    station: str | None = None  # the name of the station the user is at (stations.md), while attached
    idle_s: float | None = None
    backend_data: dict[str, Any] = field(default_factory=dict, compare=False)
    logoff: LogoffPlan | None = None
    # The language its user's station asked for when it started or resumed it (a catalogue
    # name, "pt_BR"); None: their desktop's or the server's (i18n.session_language).
    language: str | None = None
    projection: Projection | None = None  # while its station shows another session's screen
    # One more on every stored change (Store.put_session), never reset: a Dashboard orders the
    # updates of a card by it, not by when they arrive (web/static/dashboard.js).
    version: int = 0
    # The sites its user may reach (core/websites.py), enforced per user by the kernel; None: all.
    web_limit: WebLimit | None = None
    # When its user raised their hand (manager/chat.py); None: the hand is down.
    hand_raised_at: float | None = None

    def with_(self, **changes: Any) -> Session:
        return replace(self, **changes)


@dataclass(frozen=True)
class EndedSession:
    id: str
    user: str
    backend: str
    display: str | None
    logon_time: float
    ended_at: float
    ended_by: str
    reason: EndReason


class Status(enum.StrEnum):
    """What happened to one target of a request."""

    STARTED = "started"
    RESUMED = "resumed"
    ENDED = "ended"
    LOGGING_OFF = "logging-off"
    LOGOFF_CANCELLED = "logoff-cancelled"
    DISCONNECTED = "disconnected"
    BLOCKED = "blocked"
    UNBLOCKED = "unblocked"
    SHOWN = "shown"
    RESIZED = "resized"
    PROJECTED = "projected"
    PROJECTION_STOPPED = "projection-stopped"
    WEB_LIMITED = "web-limited"
    WEB_UNLIMITED = "web-unlimited"
    LAUNCHED = "launched"
    CLOSED = "closed"  # an application left when asked
    TERMINATED = "terminated"  # ... only after SIGTERM
    KILLED = "killed"  # ... only after SIGKILL
    NOTHING = "nothing-to-close"  # no application of that name was running there
    WOULD_END = "would-end"
    WOULD_DO = "would-do"
    UNKNOWN = "unknown-session"
    FORBIDDEN = "not-permitted"
    FAILED = "failed"


FAILURES = frozenset({Status.UNKNOWN, Status.FORBIDDEN, Status.FAILED})


@dataclass(frozen=True)
class Outcome:
    id: str
    status: Status
    user: str | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status not in FAILURES


@dataclass(frozen=True)
class Target:
    """Which sessions a request is about: ids, all (never the caller's own), or none = own."""

    ids: tuple[str, ...] = ()
    all: bool = False
    # Fleet mode, with ``all``: "*" = every host of the fleet, or one host's name; None = this host.
    # (Ids name their own host: ``host/id``.)
    scope: str | None = None

    @property
    def own(self) -> bool:
        return not self.ids and not self.all


class PolydeskError(Exception):
    """Base of the errors every interface translates into an answer."""

    code = "error"


class UnknownSession(PolydeskError):
    code = "unknown-session"

    def __init__(self, session_id: str) -> None:
        super().__init__(f"no session with id {session_id!r}")
        self.session_id = session_id


class UnknownUser(PolydeskError):
    code = "unknown-user"

    def __init__(self, user: str) -> None:
        super().__init__(f"no user named {user!r}")
        self.user = user


class UnknownToken(PolydeskError):
    code = "unknown-token"

    def __init__(self, token_id: str) -> None:
        super().__init__(f"no token with id {token_id!r}")
        self.token_id = token_id


class UnknownHost(PolydeskError):
    """A fleet host that is not known (or fleet mode is off, and no host but this one is)."""

    code = "unknown-host"

    def __init__(self, host: str, why: str | None = None) -> None:
        super().__init__(why or f"no host {host!r} in the fleet")
        self.host = host


class UnknownName(PolydeskError):
    """No station or group of that id or name."""

    code = "unknown-name"


class NotPermitted(PolydeskError):
    code = "not-permitted"


class InvalidRequest(PolydeskError):
    code = "invalid-request"


class Conflict(PolydeskError):
    """A well-formed request the sessions' present state does not allow (nothing to project)."""

    code = "conflict"


class RateLimited(PolydeskError):
    """Too many requests of one kind too fast (a student's chat messages): try again later."""

    code = "rate-limited"


class BackendError(PolydeskError):
    """A session backend could not do what was asked (Xvnc did not start, X refused ...)."""

    code = "host-error"  # the API's name from before "backend" (kept: clients match on it)


class StoreError(PolydeskError):
    """The state directory cannot be written (full disk, corrupt database ...)."""

    code = "store-error"
