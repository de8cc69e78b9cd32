"""API tokens (administrators): only a digest is stored; the token is shown once."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from polydesk.core import policy
from polydesk.core.model import Action, Caller, NotPermitted, UnknownToken
from polydesk.core.texts import check_text
from polydesk.manager.parts import Parts


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(parts: Parts, caller: Caller, user: str | None = None, note: str = "") -> tuple[str, str]:
    """A new token acting as ``user`` (default: the caller). Returns (token id, token)."""
    decision = policy.may_global(caller, Action.TOKEN)
    name = user or caller.user
    if not decision:
        parts.audit.write(caller, Action.TOKEN, [], [], allowed=False, reason=decision.reason,
                          detail={"user": name})
        raise NotPermitted(decision.reason)
    check_text("note", note, max_length=200)
    if user is not None:
        check_text("user", user, max_length=64, required=True)
    account = parts.lookup(name)
    token_id, token = secrets.token_hex(6), "pdk_" + secrets.token_urlsafe(32)
    parts.store.add_token(token_id, token_digest(token), account.name, caller.user, note)
    parts.audit.write(caller, Action.TOKEN, [], [],
                      detail={"op": "create", "token_id": token_id, "user": account.name, "note": note})
    return token_id, token


def tokens(parts: Parts, caller: Caller) -> list[dict[str, Any]]:
    decision = policy.may_global(caller, Action.TOKEN)
    if not decision:
        raise NotPermitted(decision.reason)
    return parts.store.tokens()


def revoke_token(parts: Parts, caller: Caller, token_id: str) -> None:
    decision = policy.may_global(caller, Action.TOKEN)
    if not decision:
        raise NotPermitted(decision.reason)
    if not parts.store.revoke_token(token_id):
        raise UnknownToken(token_id)
    parts.audit.write(caller, Action.TOKEN, [], [], detail={"op": "revoke", "token_id": token_id})
