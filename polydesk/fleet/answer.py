"""Answering the fleet: requests for this host, carried out by its own Manager with its own rules.

Each request on ``<prefix>.cmd.<host>.<action>`` must be signed by a trusted host
(fleet.wire); the caller it names gets the account of that name on *this* host
and the role *this* host's groups give it, whatever role the asking host saw.
Refusals are answered and audited; every answer is signed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import nacl.signing
import nats.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from polydesk.core.model import Caller, InvalidRequest, PolydeskError, Target
from polydesk.fleet.desk import outcome_json
from polydesk.fleet.wire import NONCE, Forged, ReplayGuard, Signer, seal, unseal
from polydesk.manager.manager import Manager

log = logging.getLogger(__name__)

# What a thumbnail request is answered with: (jpeg, etag, version) of the caller's view of a session.
ThumbnailSource = Callable[[Caller, str, str], Awaitable[tuple[bytes, str, int]]]

MAX_HANDLING = 64  # requests carried out at once; more are answered "busy"
REFUSALS_AUDITED_PER_MIN = 60  # a flood of forged requests must not flood the audit log
_ACTIONS = frozenset({"logoff", "disconnect", "block", "unblock", "message"})
_OPTIONS = {
    "logoff": ("grace", "force", "message", "what_if", "wait", "wait_limit"),
    "disconnect": (), "unblock": (), "block": ("message",), "message": ("text", "timeout"),
}


class Answers:
    def __init__(self, name: str, manager: Manager, signer: Signer,
                 keys: Mapping[str, nacl.signing.VerifyKey], client: Callable[[], Client | None],
                 thumbnails: ThumbnailSource | None = None) -> None:
        self.name = name
        self.manager = manager
        self.signer = signer
        self.keys = keys
        self.thumbnails = thumbnails  # None: this host serves no thumbnails to the others
        self._client = client
        self._replay = ReplayGuard()
        self._handling: set[asyncio.Task[None]] = set()
        self._refusals: list[float] = []

    async def close(self) -> None:
        for task in self._handling:
            task.cancel()
        await asyncio.gather(*self._handling, return_exceptions=True)

    async def on_request(self, msg: Msg) -> None:
        """A request on this host's subjects: carried out in a task of its own."""
        if len(self._handling) >= MAX_HANDLING:
            await self._reply(msg, "", {"error": {"code": "busy", "message": f"host {self.name} is busy"}})
            return
        task = asyncio.create_task(self._handle(msg))
        self._handling.add(task)
        task.add_done_callback(self._handling.discard)

    async def _handle(self, msg: Msg) -> None:
        action = msg.subject.rsplit(".", 1)[-1]
        try:
            request = json.loads(msg.data)
            if not isinstance(request, dict):
                raise ValueError("not an object")
        except ValueError:
            request = {}
        try:
            opened = unseal(self.keys, msg.subject, msg.headers, msg.data)
            self._replay.check(opened.nonce)
            if not request:
                raise Forged("the request is not a JSON object")
            caller = self._caller(request.get("caller"), opened.sender)
        except Forged as exc:
            self._audit_refusal(action, msg, request, str(exc))
            await self._reply(msg, (msg.headers or {}).get(NONCE, ""), {
                "error": {"code": "not-permitted", "message": f"refused by host {self.name}: {exc}"}})
            return
        try:
            meta, body = await self._execute(action, request, caller)
        except Exception as exc:  # a bug must still answer, or the asking host waits in vain
            log.exception("fleet: %s request from %s failed", action, opened.sender)
            meta, body = {"error": {"code": "error", "message": f"host {self.name}: {exc}"}}, b""
        await self._reply(msg, opened.nonce, meta, body)

    def _caller(self, data: Any, origin: str) -> Caller:
        """The caller as this host sees them: its own account of that name, its own groups' role."""
        user = data.get("user") if isinstance(data, dict) else None
        if not isinstance(user, str) or not user:
            raise Forged("the request names no caller")
        return self.manager.caller_named(user, f"fleet:{origin}")

    async def _execute(self, action: str, request: dict[str, Any], caller: Caller
                       ) -> tuple[dict[str, Any], bytes]:
        try:
            if action == "ping":
                return {"host": self.name}, b""
            if action == "thumbnail":
                return await self._thumbnail(request, caller)
            if action not in _ACTIONS:
                raise InvalidRequest(f"host {self.name} has no action {action!r}")
            ids = request.get("ids") or []
            if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                raise InvalidRequest("ids must be a list of session ids")
            target = Target(ids=tuple(ids), all=request.get("all") is True)
            given: dict[str, Any] = request["options"] if isinstance(request.get("options"), dict) else {}
            options = {k: given[k] for k in _OPTIONS[action] if k in given}
            use_case = getattr(self.manager, action)
            outcomes = await use_case(caller, target, **options)
            return {"results": [outcome_json(o) for o in outcomes]}, b""
        except PolydeskError as exc:
            return {"error": {"code": exc.code, "message": str(exc)}}, b""
        except (TypeError, ValueError) as exc:  # options of the wrong type
            return {"error": {"code": InvalidRequest.code, "message": f"malformed request: {exc}"}}, b""

    async def _thumbnail(self, request: dict[str, Any], caller: Caller) -> tuple[dict[str, Any], bytes]:
        if self.thumbnails is None:
            raise InvalidRequest(f"host {self.name} does not serve thumbnails")
        session_id, size = request.get("id"), request.get("size", "medium")
        if not isinstance(session_id, str) or size not in ("small", "medium", "large"):
            raise InvalidRequest("a thumbnail request needs id and size (small, medium, large)")
        jpeg, etag, version = await self.thumbnails(caller, session_id, size)
        meta = {"etag": etag, "version": version}
        if etag and request.get("etag") == etag:
            return {**meta, "not_modified": True}, b""
        return meta, jpeg

    async def _reply(self, msg: Msg, nonce: str, meta: dict[str, Any], body: bytes = b"") -> None:
        if not msg.reply:
            return
        headers = seal(self.signer, self.name, msg.reply, body, nonce=nonce or None, meta=meta)
        client = self._client()
        with contextlib.suppress(nats.errors.Error):
            if client is not None:
                await client.publish(msg.reply, body, headers=headers)

    def _audit_refusal(self, action: str, msg: Msg, request: dict[str, Any], reason: str) -> None:
        now = time.monotonic()
        self._refusals = [t for t in self._refusals if t > now - 60]
        log.warning("fleet: refused %s request on %s: %s", action, msg.subject, reason)
        if len(self._refusals) >= REFUSALS_AUDITED_PER_MIN:
            return
        self._refusals.append(now)
        claimed: dict[str, Any] = request["caller"] if isinstance(request.get("caller"), dict) else {}
        ids: list[Any] = request["ids"] if isinstance(request.get("ids"), list) else []
        sender = (msg.headers or {}).get("Pd-From", "?")
        self.manager.record_refused_request(
            str(claimed.get("user", "?"))[:64], f"fleet:{str(sender)[:63]}", action[:32],
            [str(i)[:64] for i in ids[:100]], reason, msg.subject)
