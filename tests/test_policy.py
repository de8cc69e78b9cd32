"""The roles table, written out as MultiPoint's account types describe it."""

from __future__ import annotations

import pytest

from polydesk.model import Action, Caller, Role, Session, SessionState
from polydesk.policy import may, may_global, may_logon, may_see, role_of

OWNER_UID = {"self": 1, "standard": 2, "dashboard": 3, "admin": 4}


def session_of(owner: str, caller_role: Role) -> Session:
    role = caller_role if owner == "self" else Role(owner)
    return Session(id="1", user=owner, uid=OWNER_UID[owner], role=role, host="fake",
                   state=SessionState.ACTIVE, logon_time=0)


ON_OTHERS = {Action.LOGOFF, Action.DISCONNECT, Action.BLOCK, Action.UNBLOCK, Action.MESSAGE,
             Action.VIEW, Action.CONTROL}
EXPECTED: dict[tuple[Role, str], set[Action]] = {
    (Role.STANDARD, "self"): {Action.LOGOFF, Action.DISCONNECT, Action.VIEW, Action.CONTROL},
    (Role.STANDARD, "standard"): set(),
    (Role.STANDARD, "dashboard"): set(),
    (Role.STANDARD, "admin"): set(),
    (Role.DASHBOARD, "self"): ON_OTHERS - {Action.BLOCK},
    (Role.DASHBOARD, "standard"): ON_OTHERS,
    (Role.DASHBOARD, "dashboard"): ON_OTHERS,
    (Role.DASHBOARD, "admin"): set(),
    (Role.ADMIN, "self"): ON_OTHERS - {Action.BLOCK},
    (Role.ADMIN, "standard"): ON_OTHERS,
    (Role.ADMIN, "dashboard"): ON_OTHERS,
    (Role.ADMIN, "admin"): ON_OTHERS,
}


@pytest.mark.parametrize(("role", "owner"), sorted(EXPECTED, key=str))
def test_roles_table(role: Role, owner: str) -> None:
    caller = Caller("me", OWNER_UID["self"], role)
    session = session_of(owner, role)
    allowed = {action for action in Action if may(caller, action, session)}
    assert allowed == EXPECTED[(role, owner)]
    for action in set(Action) - allowed:
        assert may(caller, action, session).reason  # every refusal says why


def test_visibility_and_global_actions() -> None:
    ana = Caller("ana", 1, Role.STANDARD)
    boss = Caller("boss", 4, Role.ADMIN)
    other = session_of("standard", Role.STANDARD)
    assert not may_see(ana, other) and may_see(boss, other)
    assert not may_global(ana, Action.AUDIT) and may_global(boss, Action.AUDIT)
    assert may_logon(ana, "ana") and not may_logon(ana, "bia") and may_logon(boss, "bia")


def test_roles_from_groups() -> None:
    assert role_of(frozenset(), 0, "adm", "dash") == Role.ADMIN
    assert role_of(frozenset({"adm", "dash"}), 5, "adm", "dash") == Role.ADMIN
    assert role_of(frozenset({"dash"}), 5, "adm", "dash") == Role.DASHBOARD
    assert role_of(frozenset({"users"}), 5, "adm", "dash") == Role.STANDARD
