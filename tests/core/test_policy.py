"""The roles table, written out as MultiPoint's account types describe it."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polydesk.core.model import Action, Caller, LogoffPlan, Role, Session, SessionState
from polydesk.core.policy import DesktopRules, may, may_global, may_have_desktop, may_logon, may_see, role_of
from polydesk.system.accounts import desktop_rules

OWNER_UID = {"self": 1, "standard": 2, "dashboard": 3, "admin": 4}


def session_of(owner: str, caller_role: Role) -> Session:
    role = caller_role if owner == "self" else Role(owner)
    return Session(id="1", user=owner, uid=OWNER_UID[owner], role=role, backend="fake",
                   state=SessionState.ACTIVE, logon_time=0)


# Applications (issue 16): launched, listed and closed in one's own session by anyone.
APPS = {Action.LAUNCH, Action.APPS, Action.CLOSE_APP}
ON_OTHERS = {Action.LOGOFF, Action.DISCONNECT, Action.BLOCK, Action.UNBLOCK, Action.MESSAGE,
             Action.VIEW, Action.CONTROL, Action.PROJECT, Action.STOP_PROJECTING,
             Action.WEB_LIMIT, Action.CHAT} | APPS
# Nobody blocks their own session, nor projects onto it (it would hide their own desktop).
NOT_ON_OWN = {Action.BLOCK, Action.PROJECT, Action.STOP_PROJECTING, Action.WEB_LIMIT}
EXPECTED: dict[tuple[Role, str], set[Action]] = {
    # RESIZE: a station sizes its own session's screen only (never a watcher's window).
    # CHAT: everyone chats in their own session, as its user (the student's side).
    (Role.STANDARD, "self"): {Action.LOGOFF, Action.DISCONNECT, Action.VIEW, Action.CONTROL, Action.RESIZE,
                              Action.CHAT} | APPS,
    (Role.STANDARD, "standard"): set(),
    (Role.STANDARD, "dashboard"): set(),
    (Role.STANDARD, "admin"): set(),
    (Role.DASHBOARD, "self"): ON_OTHERS - NOT_ON_OWN | {Action.RESIZE},
    (Role.DASHBOARD, "standard"): ON_OTHERS,
    (Role.DASHBOARD, "dashboard"): ON_OTHERS,
    (Role.DASHBOARD, "admin"): set(),
    (Role.ADMIN, "self"): ON_OTHERS - NOT_ON_OWN | {Action.RESIZE},
    (Role.ADMIN, "standard"): ON_OTHERS,
    (Role.ADMIN, "dashboard"): ON_OTHERS,
    (Role.ADMIN, "admin"): ON_OTHERS,
}

# Who may log a session off may cancel that log-off (for one's own session, see below).
for _allowed in EXPECTED.values():
    if Action.LOGOFF in _allowed:
        _allowed.add(Action.CANCEL_LOGOFF)


@pytest.mark.parametrize(("role", "owner"), sorted(EXPECTED, key=str))
def test_roles_table(role: Role, owner: str) -> None:
    caller = Caller("me", OWNER_UID["self"], role)
    session = session_of(owner, role)
    allowed = {action for action in Action if may(caller, action, session)}
    assert allowed == EXPECTED[(role, owner)]
    for action in set(Action) - allowed:
        assert may(caller, action, session).reason  # every refusal says why


@pytest.mark.parametrize("role", list(Role))
def test_nobody_but_an_administrator_cancels_someone_elses_log_off_of_their_own_session(role: Role) -> None:
    caller = Caller("me", OWNER_UID["self"], role)
    own = session_of("self", role)
    by_teacher = own.with_(state=SessionState.LOGGING_OFF, logoff=LogoffPlan("teacher", 0, 30, False))
    by_me = own.with_(state=SessionState.LOGGING_OFF, logoff=LogoffPlan("me", 0, 30, False))
    assert bool(may(caller, Action.CANCEL_LOGOFF, by_teacher)) == (role == Role.ADMIN)
    assert may(caller, Action.CANCEL_LOGOFF, by_me)


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


# Property tests: whatever the ids, users and roles, no role ever gains an action the
# table above denies, and the rules MultiPoint states hold.
roles = st.sampled_from(list(Role))
actions = st.sampled_from(list(Action))


@given(caller_role=roles, owner_role=roles, action=actions, caller_uid=st.integers(0, 5),
       owner_uid=st.integers(0, 5), session_id=st.text(min_size=1, max_size=8))
def test_no_role_gains_what_the_table_denies(caller_role: Role, owner_role: Role, action: Action,
                                             caller_uid: int, owner_uid: int, session_id: str) -> None:
    caller = Caller("c", caller_uid, caller_role)
    session = Session(id=session_id, user="o", uid=owner_uid, role=owner_role, backend="fake",
                      state=SessionState.ACTIVE, logon_time=0)
    owner = "self" if caller_uid == owner_uid else owner_role.value
    expected = EXPECTED[(caller_role, owner)]
    assert bool(may(caller, action, session)) == (action in expected)
    if caller_role == Role.STANDARD and caller_uid != owner_uid:
        assert not may(caller, action, session)  # standard users: nothing on others
    if owner_role == Role.ADMIN and caller_role != Role.ADMIN and caller_uid != owner_uid:
        assert not may(caller, action, session)  # only administrators touch administrators
    if caller_uid == owner_uid:
        assert not may(caller, Action.BLOCK, session)  # nobody locks themselves out


@given(caller_role=roles, action=actions)
def test_global_actions_only_for_administrators(caller_role: Role, action: Action) -> None:
    decision = may_global(Caller("c", 1, caller_role), action)
    if action in (Action.AUDIT, Action.TOKEN):
        assert bool(decision) == (caller_role == Role.ADMIN)


# ---------------------------------------------------------------- who may have a desktop (issue 13)


def test_the_rules_are_the_systems_own(tmp_path: Path) -> None:
    defs, shells = tmp_path / "login.defs", tmp_path / "shells"
    defs.write_text("# a comment\nUID_MIN\t\t\t 500\nUID_MAX 60000\n")
    shells.write_text("# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/zsh # zsh\n\n")
    rules = desktop_rules(["kiosk"], defs, shells)
    assert rules == DesktopRules(500, frozenset({"/bin/sh", "/usr/bin/zsh"}), frozenset({"kiosk"}))
    missing = desktop_rules((), tmp_path / "none", tmp_path / "none")
    assert (missing.uid_min, missing.login_shells) == (1000, frozenset())  # shadow's default; nobody


@pytest.mark.parametrize(("name", "uid", "shell", "allowed"), [
    ("root", 0, "/bin/bash", False),
    ("www-data", 33, "/usr/sbin/nologin", False),
    ("backup", 34, "/bin/sh", False),  # a login shell does not make a system account a person
    ("ana", 1000, "/usr/sbin/nologin", False),
    ("ana", 1000, "/bin/false", False),
    ("ana", 1000, "", False),
    ("ana", 1000, "/bin/sh", True),
    ("ldap-user", 5000, None, True),  # the name service does not know it: the uid decides
    ("kiosk", 33, "/usr/sbin/nologin", True),  # named in the setting
])
def test_who_may_have_a_desktop(name: str, uid: int, shell: str | None, allowed: bool) -> None:
    rules = DesktopRules(1000, frozenset({"/bin/sh", "/bin/bash"}), frozenset({"kiosk"}))
    decision = may_have_desktop(name, uid, shell, rules)
    assert bool(decision) == allowed
    assert allowed or repr(name) in decision.reason



def test_stations_and_groups() -> None:
    """Issue 14.9: Dashboard users and administrators see stations and keep groups; only
    administrators rename stations; standard users do neither."""
    ana, tch, boss = (Caller(n, i, r) for n, i, r in (("ana", 1, Role.STANDARD), ("tch", 2, Role.DASHBOARD),
                                                       ("boss", 3, Role.ADMIN)))
    for action in (Action.STATIONS, Action.GROUPS, Action.WEB_LISTS):
        assert not may_global(ana, action) and may_global(tch, action) and may_global(boss, action)
    assert not may_global(tch, Action.RENAME_STATION) and may_global(boss, Action.RENAME_STATION)
    assert "administrators" in may_global(tch, Action.RENAME_STATION).reason
