"""The use cases: logon, logoff, disconnect, block, unblock, message, list, audit.

Every interface (REST, web pages, CLI through the API, the fleet) ends up here, so this is
the one place that checks policy, changes sessions, writes the audit log and publishes
events. Backends, the store and the bus come in by constructor.

``Manager`` is the facade every interface uses; each verb group is a module of its own,
given the manager's shared parts (parts.py):

    lifecycle   start, close                   recovery    recover
    logon       logon                          logoff      logoff, cancel_logoff
    block       block, unblock                 blockguard  the block guard, restores
    projection  project, stop_projecting       chat        chat, raised hands
    actions     disconnect, message            attach      the stations on sessions
    queries     list_sessions, get_session...  tokens      API tokens
    discovery   sessions the OS starts         watch       sessions that end by themselves
    holds       the log-on page's holds        each        the shape every action shares
    apps        launch, list, close applications
    audit       the audit log's one writer     idle        idle times, cached
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

from polydesk.backends.base import SessionBackend
from polydesk.config.settings import Settings
from polydesk.core import policy
from polydesk.core.apps import App
from polydesk.core.events import AuditRecord, Event, EventBus
from polydesk.core.model import (
    Account,
    Action,
    Caller,
    Outcome,
    Projection,
    Role,
    Session,
    SessionState,
    Target,
    UnknownUser,
)
from polydesk.core.screen import Screen
from polydesk.manager import actions, holds, queries, recovery, tokens
from polydesk.manager.apps import Apps
from polydesk.manager.attach import Attach
from polydesk.manager.block import Blocks
from polydesk.manager.blockguard import BlockGuard
from polydesk.manager.chat import Chat, ChatMessage
from polydesk.manager.discovery import Discovery
from polydesk.manager.each import resolve
from polydesk.manager.groups import Group, Groups
from polydesk.manager.holds import HoldKeeper
from polydesk.manager.lifecycle import Lifecycle
from polydesk.manager.logoff import LogoffRequest, Logoffs
from polydesk.manager.logon import logon
from polydesk.manager.parts import Parts
from polydesk.manager.projection import Projections
from polydesk.manager.screensize import Ports, ScreenSizes
from polydesk.manager.station_book import StationBook, StationInfo
from polydesk.manager.stations import Mode, Station
from polydesk.manager.viewing import Viewing
from polydesk.manager.watch import Watch
from polydesk.manager.weblimits import SavedList, WebLimits
from polydesk.store.store import Store

H = TypeVar("H")


class Manager:
    def __init__(
        self,
        backends: Sequence[SessionBackend],
        store: Store,
        bus: EventBus,
        settings: Settings,
        lookup: Callable[[str], Account],
    ) -> None:
        self.parts = parts = Parts(backends, store, bus, settings, lookup)
        # The parts themselves, for the tests to look into: the web and the
        # fleet use the methods below (the import contract keeps them from store and backends).
        self.backends, self.default_backend = parts.backends, parts.default_backend
        self.store, self.bus, self.settings, self.lookup = store, bus, settings, lookup
        self.accounts, self.stations = parts.accounts, parts.stations
        self.station_book = StationBook(store, parts.audit, parts.restation)  # named stations
        self.groups = Groups(store, parts.audit)
        self.watch = Watch(parts)
        self.logoffs = Logoffs(parts, self.watch)
        self.guard = BlockGuard(parts)
        self.blocks = Blocks(parts, self.guard)
        self.attach = Attach(parts, self.station_book)
        self.screens = ScreenSizes(settings, Ports(parts.session_now, parts.backend, parts.set,
                                                   self.attach.audit_resize))
        self.viewing = Viewing(parts)
        self.projections = Projections(parts)
        self.web = WebLimits(parts)
        self.applications = Apps(parts)
        self.chat = Chat(parts)
        self.lifecycle = Lifecycle(parts, self.watch, self.logoffs, Discovery(parts, self.watch),
                                   self.guard, self.attach, self.screens)

    # lifecycle

    async def start(self) -> None:
        await self.lifecycle.start(self)
        await self.web.start()
        await self.chat.start()

    async def recover(self) -> list[str]:
        return await recovery.recover(self.parts)

    async def close(self) -> None:
        await self.chat.close()
        await self.web.close()
        await self.lifecycle.close()

    # queries

    async def list_sessions(self, caller: Caller) -> list[Session]:
        return await queries.list_sessions(self.parts, caller)

    async def get_session(self, caller: Caller, session_id: str) -> Session:
        return await queries.get_session(self.parts, caller, session_id)

    def connections(self, caller: Caller, session_id: str) -> list[dict[str, Any]]:
        return queries.connections(self.parts, caller, session_id)

    def audit(self, caller: Caller, limit: int = 100, since: int = 0) -> list[AuditRecord]:
        return queries.audit(self.parts, caller, limit, since)

    def session_now(self, session_id: str) -> Session | None:
        return self.parts.session_now(session_id)

    def in_session(self, session: Session, message: str) -> str:
        return self.parts.in_session(session, message)

    def stored_sessions(self) -> list[Session]:
        """Every session as stored, unchecked and as it is (what this host tells the fleet)."""
        return self.store.sessions()

    def events(self) -> AbstractAsyncContextManager[asyncio.Queue[Event]]:
        """``async with manager.events() as queue``: every event from now on, in order."""
        return self.bus.subscribe()

    # accounts and roles

    def role_of(self, account: Account) -> Role:
        """The role ``account``'s groups give it on this host (policy.role_of)."""
        return self.parts.role_of(account.groups, account.uid)

    def account(self, name: str) -> Account:
        """The account as the system gave it at most role_cache_seconds ago (UnknownUser)."""
        return self.accounts.by_name(name)

    def account_by_uid(self, uid: int) -> Account:
        return self.accounts.by_uid(uid)

    def caller_named(self, user: str, via: str) -> Caller:
        """A caller named by another host: this host's account of that name and the role this
        host's groups give it, read now; no such account here: a standard caller owning nothing."""
        try:
            account = self.lookup(user)
        except UnknownUser:
            return Caller(user=user, uid=-1, role=Role.STANDARD, via=via)
        return Caller(user=account.name, uid=account.uid, role=self.role_of(account), via=via)

    def end_signins_with(self, sign_out: Callable[[set[str]], int]) -> None:
        """How web sign-ins are ended when the session they were the station of is ended by
        someone else (the web's Authenticator; without a web interface nobody is signed in)."""
        self.stations.sign_out = sign_out

    # watching screens (viewing.py: the monitoring rules)

    def may_view(self, caller: Caller, session: Session) -> policy.Decision:
        return self.viewing.may_view(caller, session)

    def on_dashboard(self, caller: Caller, session: Session) -> bool:
        return self.viewing.on_dashboard(caller, session)

    def watchable(self, caller: Caller, session_id: str) -> Session:
        return self.viewing.watchable(caller, session_id)

    def screen_of(self, session: Session) -> Screen | None:
        return self.viewing.screen_of(session)

    def no_screen_text(self, session: Session) -> str:
        return self.viewing.no_screen_text(session)

    # API tokens

    def create_token(self, caller: Caller, user: str | None = None, note: str = "") -> tuple[str, str]:
        return tokens.create_token(self.parts, caller, user, note)

    def tokens(self, caller: Caller) -> list[dict[str, Any]]:
        return tokens.tokens(self.parts, caller)

    def revoke_token(self, caller: Caller, token_id: str) -> None:
        tokens.revoke_token(self.parts, caller, token_id)

    # logon, and the actions on sessions

    async def logon(self, caller: Caller, user: str, language: str | None = None) -> tuple[Session, bool]:
        return await logon(self.parts, self.watch, caller, user, language)

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
        asked = LogoffRequest(grace, force, message, what_if, wait, wait_limit)
        return await self.logoffs.logoff(caller, target, asked)

    async def cancel_logoff(self, caller: Caller, target: Target) -> list[Outcome]:
        return await self.logoffs.cancel(caller, target)

    def state_without_logoff(self, session: Session) -> SessionState:
        return self.logoffs.state_without_logoff(session)

    async def disconnect(self, caller: Caller, target: Target) -> list[Outcome]:
        return await actions.disconnect(self.parts, caller, target)

    async def message(
        self, caller: Caller, target: Target, text: str, timeout: int | None = None
    ) -> list[Outcome]:
        return await actions.message(self.parts, caller, target, text, timeout)

    async def block(self, caller: Caller, target: Target, message: str | None = None) -> list[Outcome]:
        return await self.blocks.block(caller, target, message)

    async def unblock(self, caller: Caller, target: Target) -> list[Outcome]:
        return await self.blocks.unblock(caller, target)

    async def project(self, caller: Caller, source_id: str | None, target: Target,
                      what_if: bool = False) -> list[Outcome]:
        """Show session ``source_id``'s screen (None: the caller's own) at the targets' stations."""
        return await self.projections.project(caller, source_id, target, what_if)

    async def stop_projecting(self, caller: Caller, source_id: str | None = None,
                              target: Target | None = None, what_if: bool = False) -> list[Outcome]:
        return await self.projections.stop(caller, source_id, target, what_if)

    def projected_to(self, session_id: str) -> Projection | None:
        """Whose screen session ``session_id``'s own station shows instead of its own (the bridge)."""
        session = self.parts.store.session(session_id)
        return None if session is None else session.projection

    # applications (apps.py)

    async def launch(self, caller: Caller, target: Target, *, argv: object = None, url: object = None,
                     app: object = None) -> list[Outcome]:
        return await self.applications.launch(caller, target, argv=argv, url=url, app=app)

    async def apps(self, caller: Caller, session_id: str) -> list[App]:
        return await self.applications.apps(caller, session_id)

    async def close_app(self, caller: Caller, target: Target, *, pid: object = None, start: object = None,
                        name: object = None) -> list[Outcome]:
        return await self.applications.close(caller, target, pid=pid, start=start, name=name)

    def installed_apps(self) -> list[Any]:
        """The applications installed on the host (system.desktop_entries.Entry), for the picker."""
        return list(self.applications.installed())

    def app_icon(self, app_id: str) -> bytes | None:
        return self.applications.icon(app_id)

    def resolve(self, caller: Caller, action: Action, target: Target) -> list[Session | Outcome]:
        """The sessions a request is about; refusals and unknown ids as ready Outcomes."""
        return resolve(self.parts, caller, action, target)

    async def restore_blocks(self) -> None:
        """One round of the block guard (blockguard.py) over every blocked session, at once."""
        await self.guard.restore_blocks()

    # web limits (weblimits.py): what the session's user may reach of the web

    async def web_limit(self, caller: Caller, target: Target, mode: object, sites: object) -> list[Outcome]:
        return await self.web.limit(caller, target, mode, sites)

    async def web_unlimit(self, caller: Caller, target: Target) -> list[Outcome]:
        return await self.web.unlimit(caller, target)

    def web_lists(self, caller: Caller) -> list[SavedList]:
        return self.web.lists(caller)

    def save_web_list(self, caller: Caller, name: object, mode: object, sites: object) -> SavedList:
        return self.web.save_list(caller, name, mode, sites)

    def delete_web_list(self, caller: Caller, name: str) -> None:
        self.web.delete_list(caller, name)

    # chat (chat.py): a conversation per session, raised hands

    def chat_history(self, caller: Caller, session_id: str, after: int = 0) -> list[ChatMessage]:
        return self.chat.history(caller, session_id, after)

    def chat_send(self, caller: Caller, session_id: str, text: object) -> ChatMessage:
        return self.chat.send(caller, session_id, text)

    async def hand(self, caller: Caller, session_id: str, raised: bool) -> Session:
        return await self.chat.hand(caller, session_id, raised)

    def chat_unread(self, caller: Caller) -> dict[str, int]:
        return self.chat.unread(caller)

    def may_read_chat(self, caller: Caller, session: Session) -> bool:
        return self.chat.may_read(caller, session)

    # stations: the browsers (or VNC clients) attached through the bridge

    async def open_station(self, caller: Caller, session_id: str, mode: Mode, client: str,
                           signin: str | None = None, station_id: int | None = None) -> Station:
        self.viewing.check_station(caller, session_id, mode)
        return await self.attach.open_station(caller, session_id, mode, client, signin, station_id)

    def close_station(self, station: Station) -> None:
        self.attach.close_station(station)

    def input_allowed(self, station: Station) -> bool:
        return self.attach.input_allowed(station)

    async def resize_screen(self, caller: Caller, station: Station, width: int,
                            height: int) -> tuple[int, int]:
        """The user's own station asks for a screen of its window's size (screensize.py)."""
        return await self.screens.request(caller, station, width, height)

    async def open_rfb(self, session_id: str) -> socket.socket | None:
        return await self.attach.open_rfb(session_id)

    # named stations and saved groups (station_book.py, groups.py)

    def new_station(self, default_name: Callable[[int], str]) -> tuple[int, str] | None:
        """A new named station for a browser that has none: (id, nonce); None when there are too many."""
        return self.station_book.new(default_name)

    def station_nonce(self, station_id: int) -> str | None:
        return self.station_book.nonce(station_id)

    async def list_stations(self, caller: Caller) -> list[StationInfo]:
        return self.station_book.listing(caller, await self.list_sessions(caller))

    def rename_station(self, caller: Caller, station_id: str, name: object) -> StationInfo:
        return self.station_book.rename(caller, station_id, name)

    def saved_groups(self, caller: Caller) -> list[Group]:
        return self.groups.saved(caller)

    def save_group(self, caller: Caller, name: object, members: object) -> Group:
        return self.groups.save(caller, name, members)

    def delete_group(self, caller: Caller, name: str) -> None:
        self.groups.delete(caller, name)

    def card_order(self, caller: Caller) -> list[str]:
        return self.groups.order(caller)

    def set_card_order(self, caller: Caller, users: object) -> list[str]:
        return self.groups.set_order(caller, users)

    # the log-on page's holds (the limiter is the web's: it comes in by argument)

    def signin_holds(self, caller: Caller, keeper: HoldKeeper[H]) -> list[H]:
        return holds.holds(self.parts.audit, caller, keeper)

    def signin_unlock(self, caller: Caller, keeper: HoldKeeper[object], user: str | None = None,
                      address: str | None = None, everything: bool = False) -> int:
        return holds.unlock(self.parts.audit, caller, keeper, user, address, everything)

    # the fleet's records: what this host asked others, what it refused

    def record_forwarded(self, caller: Caller, action: Action, outcomes: Sequence[Outcome],
                         detail: dict[str, Any]) -> None:
        self.parts.audit.forwarded(caller, action, outcomes, detail)

    def record_refused_request(self, claimed_user: str, via: str, action: str, targets: list[str],
                               reason: str, subject: str) -> None:
        self.parts.audit.refused_request(claimed_user, via, action, targets, reason, subject)
