"""Who is calling: the Unix socket's peer credentials, a bearer token, or a web log-on.

The caller's role is worked out afresh on every request from the account's
current groups, so removing someone from polydesk-dashboard takes effect at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from fastapi import HTTPException, Request

from polydesk import policy
from polydesk.accounts import account_by_uid, lookup_account
from polydesk.config import Settings
from polydesk.model import Account, Caller, UnknownUser
from polydesk.web.server import PEER_KEY

SESSION_USER_KEY = "user"


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        token_user: Callable[[str], str | None],
        by_uid: Callable[[int], Account] = account_by_uid,
        by_name: Callable[[str], Account] = lookup_account,
    ) -> None:
        self.settings = settings
        self.token_user = token_user
        self.by_uid = by_uid
        self.by_name = by_name

    def caller_for(self, account: Account, via: str) -> Caller:
        role = policy.role_of(account.groups, account.uid, self.settings.admin_group,
                              self.settings.dashboard_group)
        return Caller(user=account.name, uid=account.uid, role=role, via=via)

    def identify(self, request: Request) -> Caller | None:
        peer = request.scope.get(PEER_KEY)
        if peer is not None:
            try:
                return self.caller_for(self.by_uid(peer[1]), "cli")
            except UnknownUser:
                return None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            user = self.token_user(token_digest(header[7:].strip()))
            return self._by_name(user, "token") if user else None
        if "session" in request.scope:
            name = request.session.get(SESSION_USER_KEY)
            if isinstance(name, str):
                return self._by_name(name, "web")
        return None

    def _by_name(self, name: str, via: str) -> Caller | None:
        try:
            return self.caller_for(self.by_name(name), via)
        except UnknownUser:
            return None

    def require(self, request: Request) -> Caller:
        caller = self.identify(request)
        if caller is None:
            raise HTTPException(401, "not signed in: use the Unix socket, a token or the log-on page")
        return caller
