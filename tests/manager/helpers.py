"""The accounts, callers and helpers of the manager's fast tests (over the in-memory FakeBackend)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from polydesk.core.model import Account, Caller, Role, UnknownUser
from polydesk.manager.manager import Manager

ACCOUNTS = {
    "ana": Account("ana", 2001, 2001, "/home/ana", "/bin/sh"),
    "bia": Account("bia", 2002, 2002, "/home/bia", "/bin/sh"),
    "caio": Account("caio", 2003, 2003, "/home/caio", "/bin/sh"),
    "teacher": Account("teacher", 2004, 2004, "/home/t", "/bin/sh", frozenset({"polydesk-dashboard"})),
    "boss": Account("boss", 2005, 2005, "/home/b", "/bin/sh", frozenset({"polydesk-admin"})),
}
ADMIN = Caller("boss", 2005, Role.ADMIN)
TEACHER = Caller("teacher", 2004, Role.DASHBOARD)
ANA = Caller("ana", 2001, Role.STANDARD)


def lookup(name: str) -> Account:
    try:
        return ACCOUNTS[name]
    except KeyError:
        raise UnknownUser(name) from None


async def logon_all(mgr: Manager, *users: str) -> list[str]:
    return [(await mgr.logon(ADMIN, user))[0].id for user in users]


class MakeManager(Protocol):
    """The make_manager fixture (conftest.py): a started manager with these settings."""

    def __call__(self, **settings: Any) -> Awaitable[Manager]: ...
