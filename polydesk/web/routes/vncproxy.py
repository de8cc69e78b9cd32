"""GET /api/v1/sessions/{id}/vnc: the station bridge, RFB over a WebSocket.

The only way a station (noVNC in a browser, or any VNC client through a relay)
reaches a session: Xvnc listens on a Unix socket that only the user and root
may open, and this bridge, in the root daemon, opens it after the manager has
said yes. Every byte the station sends goes through the RFB reader
(rfbfilter.ClientStream), which drops input while the session is blocked or
the station only views, and passes the rest on rewritten in a canonical form.

- ``?mode=own`` (default): the session's user at their desk; takes the session
  over from any other browser of theirs.
- ``?mode=view``: watch, input ignored; ``?mode=control``: drive it. Dashboard
  users and administrators, as policy allows; both are audited by the manager.

Refusals come before the WebSocket is accepted, as an HTTP answer (401, 403,
404, 409, 502) with the usual JSON error body, so no byte of RFB is ever
exchanged with a caller who may not have it. Once connected, the daemon hangs
up with a 4xxx close code whose reason a person can read (see CLOSE_*).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel
from starlette.requests import HTTPConnection

from polydesk.core.model import BackendError, Caller, InvalidRequest, PolydeskError, Projection
from polydesk.manager.manager import Manager
from polydesk.manager.stations import Mode, Station
from polydesk.web.auth import Authenticator
from polydesk.web.errors import error_response, status_of
from polydesk.web.projected import RelayError, Relays, serve
from polydesk.web.race import first_done
from polydesk.web.rfbfilter import OPENING, VERSION, ClientStream, ProtocolError
from polydesk.web.routes.api import ERRORS, Who
from polydesk.web.routes.rooms import ForgedStation, StationCookies

log = logging.getLogger(__name__)

SUBPROTOCOL = "binary"  # what noVNC asks for; a client asking for nothing gets nothing
RECHECK_S = 30.0  # how often an open station checks its caller is still signed in with the same role
READ_SIZE = 1 << 16

# Close codes (4000-4999 are the application's). The reason is a sentence for the person.
CLOSE_STATION = 4000  # the daemon hung up this station: taken over, disconnected, session ended
CLOSE_SWITCHED = 4100  # a projection started or stopped: connect again at once to see what to show
CLOSE_PROTOCOL = 4400  # the client sent what the bridge does not forward (not RFB, text frames)
CLOSE_SIGNED_OUT = 4401  # the caller signed out, was signed out (session ended by another), or lost a role
CLOSE_SCREEN_GONE = 4502  # the session's RFB server hung up (its display server ended)

def same_origin(conn: HTTPConnection) -> bool:
    """A browser sends its cookie on any site's WebSocket handshake: only our own pages may use it."""
    origin = conn.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == conn.headers.get("host")


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"),
             ("HeadlessChrome/", "HeadlessChrome"), ("Chromium/", "Chromium"), ("Chrome/", "Chrome"),
             ("Version/", "Safari"))
_PLATFORMS = (("Android", "Android"), ("CrOS", "ChromeOS"), ("iPhone", "iOS"), ("iPad", "iOS"),
              ("Windows", "Windows"), ("Mac OS X", "macOS"), ("Linux", "Linux"))


def short_agent(user_agent: str) -> str:
    """"Chrome 156 on Linux" rather than 120 characters of Mozilla/5.0 (X11; ...) for the CLIENT column."""
    for token, name in _BROWSERS:
        match = re.search(re.escape(token) + r"(\d+)", user_agent)
        if match:
            platform = next((p for key, p in _PLATFORMS if key in user_agent), None)
            return f"{name} {match.group(1)}" + (f" on {platform}" if platform else "")
    return " ".join(user_agent.split())[:48] or "unknown client"


def client_label(conn: HTTPConnection) -> str:
    """The station's CLIENT: its address (the Unix socket says "local") and what it is."""
    address = conn.client.host if conn.client and conn.client.host else "local"
    return f"{address} {short_agent(conn.headers.get('user-agent', ''))}"


def _reason(text: str) -> str:
    """A close reason fits in 123 bytes of UTF-8."""
    encoded = text.encode()
    return text if len(encoded) <= 123 else encoded[:120].decode(errors="ignore") + "…"


async def _accept(ws: WebSocket) -> None:
    """Accept the station's WebSocket, with noVNC's subprotocol if it asked for it."""
    await ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in ws.scope.get("subprotocols", []) else None)


async def _refuse(ws: WebSocket, status: int, code: str, message: str) -> None:
    """Answer the handshake with an HTTP error, so the client never gets a WebSocket at all."""
    body = error_response(status, code, message)
    if "websocket.http.response" in ws.scope.get("extensions", {}):
        await ws.send_denial_response(body)
    else:  # a server without the denial extension: closing before accept answers 403
        await ws.close(code=4000 + status, reason=_reason(message))


class ConnectionOut(BaseModel):
    station: int
    user: str
    mode: str
    client: str
    connected_at: float
    disconnected_at: float | None


def vnc_router(manager: Manager, auth: Authenticator, stations: StationCookies | None = None,
               relays: Relays | None = None) -> APIRouter:
    router = APIRouter(prefix="/api/v1", responses=ERRORS)
    relays = relays or Relays(manager.open_rfb)

    @router.get("/sessions/{session_id}/connections", response_model=list[ConnectionOut],
                summary="Stations that were attached to a session: who, how, from where, when")
    async def connections(session_id: str, caller: Who) -> list[ConnectionOut]:
        return [ConnectionOut(**row) for row in manager.connections(caller, session_id)]

    @router.websocket("/sessions/{session_id}/vnc")
    async def vnc(ws: WebSocket, session_id: str) -> None:
        caller = auth.identify(ws)
        if caller is None:
            await _refuse(ws, 401, "not-signed-in",
                          "not signed in: use the Unix socket, a token or the log-on page")
            return
        if caller.via == "web" and not same_origin(ws):
            await _refuse(ws, 403, "not-permitted", "a page of another site may not open a station")
            return
        try:
            mode = Mode(ws.query_params.get("mode", Mode.OWN))
        except ValueError:
            await _refuse(ws, 400, "invalid-request", "mode must be own, view or control")
            return
        station_id = None
        if mode == Mode.OWN and stations is not None:
            try:  # a student must not appear as another station: its cookie is signed
                station_id = stations.station_of(ws)
            except ForgedStation as exc:
                log.warning("station of %s refused: %s", caller.user, exc)
                await _refuse(ws, 403, "not-permitted",
                              f"{exc}: reload the page to get this browser's own station")
                return
        try:
            signin = auth.signin_of(ws) if caller.via == "web" else None
            station = await manager.open_station(caller, session_id, mode, client_label(ws), signin,
                                                 station_id)
        except PolydeskError as exc:
            # Monitoring off refuses here too (viewing.py): nobody watches anyone else's screen,
            # not even through Enlarge. A session logging off is a conflict, not a bad request.
            status = 409 if isinstance(exc, InvalidRequest) else status_of(exc)
            await _refuse(ws, status, exc.code, str(exc))
            return
        try:
            await _attach(ws, manager, auth, caller, station, relays)
        finally:
            manager.close_station(station)

    return router


async def _attach(ws: WebSocket, manager: Manager, auth: Authenticator, caller: Caller,
                  station: Station, relays: Relays) -> None:
    projection = manager.projected_to(station.session_id) if station.mode == Mode.OWN else None
    if projection is not None:
        await _attach_projection(ws, auth, caller, station, relays, projection)
        return
    try:
        sock = await manager.open_rfb(station.session_id)
    except BackendError as exc:
        log.warning("station of %s: cannot reach session %s: %s", caller.user, station.session_id, exc)
        await _refuse(ws, 502, "host-error", f"session {station.session_id}: its screen does not answer")
        return
    if sock is None:
        await _refuse(ws, 409, "no-screen",
                      f"session {station.session_id} has no screen a station can show")
        return
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    try:
        await _accept(ws)
        log.info("station %d: %s %s session %s from %s", station.id, caller.user, station.mode,
                 station.session_id, station.client)
        code, reason = await _pump(ws, manager, auth, caller, station, reader, writer)
        if code is not None:
            with contextlib.suppress(Exception):  # the browser may be gone already
                await ws.close(code=code, reason=_reason(reason))
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def _pump(ws: WebSocket, manager: Manager, auth: Authenticator, caller: Caller, station: Station,
                reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> tuple[int | None, str]:
    """Copy both ways until one side ends; say how to close the WebSocket (None: it is closed)."""
    wanted: list[tuple[int, int]] = []  # the station's latest SetDesktopSize, not yet handed on
    asked = asyncio.Event()

    def desktop_size(width: int, height: int) -> None:
        wanted[:] = [(width, height)]
        asked.set()

    # Only the user's own station sizes the screen: a watcher's window never changes it.
    stream = ClientStream(lambda: manager.input_allowed(station),
                          desktop_size if station.mode == Mode.OWN else None)
    # The bridge's own handshake, whatever the station answers: Xvnc reads a fixed version, and
    # a station that hangs up or is refused early leaves no failed log-on in Xvnc's blacklist.
    writer.write(OPENING)
    answered = asyncio.Event()

    async def upstream() -> tuple[int | None, str]:  # station -> session, through the filter
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return None, ""
            data = message.get("bytes")
            if data is None:
                raise ProtocolError("the bridge carries RFB in binary messages only")
            out = stream.feed(data)
            if stream.answered:
                answered.set()
            if out:
                writer.write(out)
                await writer.drain()

    async def downstream() -> tuple[int | None, str]:  # session -> station, untouched
        # Xvnc answers the bridge's handshake at once; the station hears what follows the
        # server's version only once it has given its own, as from Xvnc itself (noVNC reads no
        # further until it has sent its version).
        with contextlib.suppress(asyncio.IncompleteReadError):
            await ws.send_bytes(await reader.readexactly(len(VERSION)))
            await answered.wait()
            while data := await reader.read(READ_SIZE):
                await ws.send_bytes(data)
        await asyncio.sleep(0.5)  # the session ending closes the station too: prefer its reason
        return CLOSE_SCREEN_GONE, station.close_reason or "Disconnected: the session's screen closed"


    async def resizes() -> tuple[int | None, str]:  # never forwarded: the daemon resizes, by RandR
        while True:
            await asked.wait()
            asked.clear()
            width, height = wanted.pop()
            try:
                await manager.resize_screen(caller, station, width, height)
            except PolydeskError as exc:
                log.info("station %d of %s: no resize to %dx%d: %s", station.id, caller.user,
                         width, height, exc)

    jobs: list[Awaitable[tuple[int | None, str]]] = [upstream(), downstream(), _hung_up(station),
                                                     _recheck(ws, auth, caller), resizes()]
    return await _first_ending(jobs, caller, station)


def _hang_up(station: Station) -> tuple[int | None, str]:
    # A station whose sign-in was ended goes to the sign-in form, one whose projection started or
    # stopped connects again at once: it says so by its code
    code = (CLOSE_SIGNED_OUT if station.signed_out else CLOSE_SWITCHED if station.switched
            else CLOSE_STATION)
    return code, station.close_reason or "Disconnected"


async def _hung_up(station: Station) -> tuple[int | None, str]:
    await station.closed.wait()
    return _hang_up(station)


async def _recheck(ws: WebSocket, auth: Authenticator, caller: Caller) -> tuple[int | None, str]:
    while True:
        await asyncio.sleep(RECHECK_S)
        if auth.identify(ws) != caller:
            return CLOSE_SIGNED_OUT, "Disconnected: you signed out or your role changed"


async def _first_ending(jobs: list[Awaitable[tuple[int | None, str]]], caller: Caller,
                        station: Station) -> tuple[int | None, str]:
    """Run the station's jobs until one ends; how to close the WebSocket (None: it is closed)."""
    done = await first_done(jobs)
    first: asyncio.Future[Any] = next(iter(done))
    if station.closed.is_set():  # taken over, disconnected, ended: that is what to tell
        return _hang_up(station)
    exc = first.exception()
    if isinstance(exc, ProtocolError):
        log.info("station %d of %s: %s", station.id, caller.user, exc)
        return CLOSE_PROTOCOL, str(exc)
    if exc is not None:
        # The browser or the session went away mid-copy (reset, broken pipe): nothing to tell.
        log.debug("station %d of %s ended: %r", station.id, caller.user, exc)
        return 1011, "the bridge failed"
    result: tuple[int | None, str] = first.result()
    return result


async def _attach_projection(ws: WebSocket, auth: Authenticator, caller: Caller, station: Station,
                             relays: Relays, projection: Projection) -> None:
    """The station of a projection target: shown the source's screen by the bridge itself."""
    try:
        async with relays.watching(projection.source) as relay:
            await _accept(ws)
            log.info("station %d: %s shown the screen of session %s", station.id, caller.user,
                     projection.source)

            async def shown() -> tuple[int | None, str]:
                await serve(ws, relay, f"{projection.source_user} (Polydesk)")
                # The source went away: the manager ends the projection; look again at once.
                return CLOSE_SWITCHED, "Showing your own screen again"

            code, reason = await _first_ending([shown(), _hung_up(station), _recheck(ws, auth, caller)],
                                               caller, station)
    except RelayError as exc:
        log.warning("station %d: no projection of session %s: %s", station.id, projection.source, exc)
        await _refuse(ws, 502, "host-error", f"session {projection.source}: its screen does not answer")
        return
    if code is not None:
        with contextlib.suppress(Exception):  # the browser may be gone already
            await ws.close(code=code, reason=_reason(reason))
