"""A small typed client of systemd-logind's D-Bus API (``org.freedesktop.login1``), over dbus-fast.

Raw messages rather than dbus-fast proxy objects: no introspection round trip, and
the handful of calls Polydesk makes are spelled out here with their signatures.
Every dbus-fast error (no bus, auth refused, a D-Bus error reply, a timeout) becomes
``Login1Error`` at this boundary, so the backend only ever sees one kind of failure.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbus_fast import BusType, Message, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.errors import DBusFastError

BUS_NAME = "org.freedesktop.login1"
MANAGER_PATH = "/org/freedesktop/login1"
MANAGER_IFACE = "org.freedesktop.login1.Manager"
SESSION_IFACE = "org.freedesktop.login1.Session"
PROPERTIES_IFACE = "org.freedesktop.DBus.Properties"
DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
# Error names meaning "that session does not exist (any more)".
GONE_ERRORS = frozenset({
    "org.freedesktop.login1.NoSuchSession",
    "org.freedesktop.DBus.Error.UnknownObject",
    "org.freedesktop.DBus.Error.UnknownMethod",
    "org.freedesktop.DBus.Error.UnknownInterface",
})
CALL_TIMEOUT = 10.0


class Login1Error(Exception):
    """logind (or the bus) did not answer as asked; ``name`` is the D-Bus error name if any."""

    def __init__(self, text: str, name: str | None = None) -> None:
        super().__init__(text)
        self.name = name

    @property
    def gone(self) -> bool:
        return self.name in GONE_ERRORS


@dataclass(frozen=True)
class SessionInfo:
    """One logind session as its D-Bus properties describe it."""

    id: str
    path: str
    uid: int
    user: str
    seat: str  # "" for sessions on no seat (SSH, cron)
    tty: str  # "tty2", "pts/0" or ""
    display: str  # the X11 display logind was told about (PAM_XDISPLAY), or ""
    type: str  # x11 | wayland | tty | mir | unspecified
    session_class: str  # user | greeter | lock-screen | background ...
    state: str  # online | active | closing
    remote: bool
    remote_host: str
    remote_user: str
    service: str  # the PAM service: sshd, gdm-password, lightdm, login ...
    leader: int  # pid of the process that registered the session (0 if unknown)
    timestamp_us: int  # realtime microseconds when the session was created
    idle_hint: bool
    idle_since_us: int  # realtime microseconds since when idle (0 if never)
    locked: bool
    vtnr: int
    desktop: str

    @classmethod
    def from_properties(cls, path: str, props: dict[str, Any]) -> SessionInfo:
        def get(name: str, default: Any) -> Any:
            variant = props.get(name)
            return default if variant is None else variant.value

        user = get("User", (0, "/"))
        seat = get("Seat", ("", "/"))
        return cls(
            id=str(get("Id", path.rsplit("/", 1)[-1])), path=path, uid=int(user[0]),
            user=str(get("Name", "")), seat=str(seat[0]), tty=str(get("TTY", "")),
            display=str(get("Display", "")), type=str(get("Type", "unspecified")),
            session_class=str(get("Class", "user")), state=str(get("State", "online")),
            remote=bool(get("Remote", False)), remote_host=str(get("RemoteHost", "")),
            remote_user=str(get("RemoteUser", "")), service=str(get("Service", "")),
            leader=int(get("Leader", 0)), timestamp_us=int(get("Timestamp", 0)),
            idle_hint=bool(get("IdleHint", False)), idle_since_us=int(get("IdleSinceHint", 0)),
            locked=bool(get("LockedHint", False)), vtnr=int(get("VTNr", 0)),
            desktop=str(get("Desktop", "")),
        )


SignalHandler = Callable[[str, str], None]  # (session id, object path)


class Login1:
    """One connection to the bus that carries logind. ``address`` is "system" or a D-Bus address."""

    def __init__(self, address: str = "system") -> None:
        self.address = address
        self._bus: MessageBus | None = None
        self._handler: Callable[[Message], None] | None = None

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    async def connect(self) -> None:
        """Connect, and make sure logind is there (running, or activatable on this bus)."""
        if self.connected:
            return
        where = "the system bus" if self.address == "system" else self.address
        try:
            bus = (MessageBus(bus_type=BusType.SYSTEM) if self.address == "system"
                   else MessageBus(bus_address=self.address))
            self._bus = await asyncio.wait_for(bus.connect(), CALL_TIMEOUT)
        except (DBusFastError, OSError, TimeoutError, ValueError) as exc:
            raise Login1Error(f"cannot connect to {where}: {exc or type(exc).__name__}") from exc
        owned = await self._dbus("NameHasOwner", "s", [BUS_NAME])
        if not owned[0]:
            activatable = await self._dbus("ListActivatableNames", "", [])
            if BUS_NAME not in activatable[0]:
                await self.close()
                raise Login1Error(f"{where} has no {BUS_NAME}: systemd-logind is not running here")

    async def close(self) -> None:
        bus, self._bus = self._bus, None
        if bus is not None:
            if self._handler is not None:
                bus.remove_message_handler(self._handler)
            bus.disconnect()
            with contextlib.suppress(Exception):  # it reports how the connection ended; we chose to
                await asyncio.wait_for(bus.wait_for_disconnect(), 2)  # type: ignore[no-untyped-call]

    async def subscribe(self, on_new: SignalHandler, on_removed: SignalHandler) -> None:
        """Call ``on_new`` / ``on_removed`` (in the loop's thread) for each SessionNew / SessionRemoved.

        Anyone on the bus may emit a signal that looks like logind's; the backend checks
        with logind itself before believing one.
        """
        bus = self._need_bus()

        def handle(message: Message) -> None:
            if (message.message_type == MessageType.SIGNAL and message.path == MANAGER_PATH
                    and message.interface == MANAGER_IFACE and message.signature == "so"):
                if message.member == "SessionNew":
                    on_new(str(message.body[0]), str(message.body[1]))
                elif message.member == "SessionRemoved":
                    on_removed(str(message.body[0]), str(message.body[1]))

        self._handler = handle
        bus.add_message_handler(handle)
        for member in ("SessionNew", "SessionRemoved"):
            rule = (f"type='signal',sender='{BUS_NAME}',path='{MANAGER_PATH}',"
                    f"interface='{MANAGER_IFACE}',member='{member}'")
            await self._dbus("AddMatch", "s", [rule])

    async def list_sessions(self) -> list[tuple[str, str]]:
        """(session id, object path) of every session logind has."""
        body = await self._manager("ListSessions", "", [])
        return [(str(row[0]), str(row[4])) for row in body[0]]

    async def session(self, path: str) -> SessionInfo | None:
        """The session's properties, or None when logind no longer has it."""
        try:
            body = await self._call(path, PROPERTIES_IFACE, "GetAll", "s", [SESSION_IFACE])
        except Login1Error as exc:
            if exc.gone:
                return None
            raise
        return SessionInfo.from_properties(path, body[0])

    async def session_path(self, session_id: str) -> str | None:
        try:
            body = await self._manager("GetSession", "s", [session_id])
        except Login1Error as exc:
            if exc.gone:
                return None
            raise
        return str(body[0])

    async def terminate(self, session_id: str) -> None:
        await self._manager("TerminateSession", "s", [session_id])

    async def kill(self, session_id: str, signal: int, who: str = "all") -> None:
        await self._manager("KillSession", "ssi", [session_id, who, signal])

    async def lock(self, session_id: str) -> None:
        await self._manager("LockSession", "s", [session_id])

    async def unlock(self, session_id: str) -> None:
        await self._manager("UnlockSession", "s", [session_id])

    # plumbing

    def _need_bus(self) -> MessageBus:
        if self._bus is None or not self._bus.connected:
            raise Login1Error("not connected to the bus that carries logind")
        return self._bus

    async def _manager(self, member: str, signature: str, body: list[Any]) -> list[Any]:
        return await self._call(MANAGER_PATH, MANAGER_IFACE, member, signature, body)

    async def _dbus(self, member: str, signature: str, body: list[Any]) -> list[Any]:
        return await self._call(DBUS_PATH, DBUS_NAME, member, signature, body, destination=DBUS_NAME)

    async def _call(self, path: str, interface: str, member: str, signature: str, body: list[Any],
                    destination: str = BUS_NAME) -> list[Any]:
        bus = self._need_bus()
        message = Message(destination=destination, path=path, interface=interface, member=member,
                          signature=signature, body=body)
        try:
            reply = await asyncio.wait_for(bus.call(message), CALL_TIMEOUT)
        except TimeoutError:
            raise Login1Error(f"{member} on {path}: no answer in {CALL_TIMEOUT} s") from None
        except (DBusFastError, OSError, EOFError) as exc:
            raise Login1Error(f"{member} on {path}: {exc or type(exc).__name__}") from exc
        if reply.message_type == MessageType.ERROR:
            text = str(reply.body[0]) if reply.body else ""
            raise Login1Error(f"{member} on {path}: {reply.error_name}: {text}".rstrip(": "),
                              reply.error_name)
        return list(reply.body)
