"""Unix accounts and their groups, read from the system databases (NSS), and the system's
own rules for which accounts are people (/etc/login.defs, /etc/shells)."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import time
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path

from polydesk.core.model import Account, UnknownUser
from polydesk.core.policy import DesktopRules

LOGIN_DEFS = Path("/etc/login.defs")
SHELLS = Path("/etc/shells")
DEFAULT_UID_MIN = 1000  # shadow's default when login.defs does not say

log = logging.getLogger(__name__)

CACHE_MAX = 10_000  # accounts remembered before the cache starts afresh


def _account(entry: pwd.struct_passwd) -> Account:
    gids = os.getgrouplist(entry.pw_name, entry.pw_gid)
    names = set()
    for gid in gids:
        try:
            names.add(grp.getgrgid(gid).gr_name)
        except KeyError:
            continue
    return Account(
        name=entry.pw_name,
        uid=entry.pw_uid,
        gid=entry.pw_gid,
        home=entry.pw_dir,
        shell=entry.pw_shell or "/bin/sh",
        groups=frozenset(names),
    )


def lookup_account(name: str) -> Account:
    try:
        return _account(pwd.getpwnam(name))
    except (KeyError, ValueError):  # ValueError: a name with a NUL in it, which no account has
        raise UnknownUser(name) from None


def account_by_uid(uid: int) -> Account:
    try:
        return _account(pwd.getpwuid(uid))
    except KeyError:
        raise UnknownUser(str(uid)) from None


def desktop_rules(allowed: Iterable[str] = (), login_defs: Path = LOGIN_DEFS,
                  shells: Path = SHELLS) -> DesktopRules:
    """The rules as the system states them now: read at every use (two small files), so an
    edit of /etc/shells or login.defs holds at once."""
    return DesktopRules(uid_min=_uid_min(login_defs), login_shells=_login_shells(shells),
                        allowed=frozenset(allowed))


def _uid_min(path: Path) -> int:
    try:
        text = path.read_text()
    except OSError:
        return DEFAULT_UID_MIN
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "UID_MIN":
            try:
                return int(fields[1], 0)
            except ValueError:
                log.warning("%s: UID_MIN %r is not a number; using %d", path, fields[1], DEFAULT_UID_MIN)
    return DEFAULT_UID_MIN


def _login_shells(path: Path) -> frozenset[str]:
    """Absolute paths listed in /etc/shells; none when it is missing (then nobody has a login
    shell, and only the accounts named in allowed_system_accounts get a desktop)."""
    try:
        text = path.read_text()
    except OSError:
        log.warning("%s cannot be read: no account counts as having a login shell", path)
        return frozenset()
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return frozenset(line for line in lines if line.startswith("/"))


class AccountCache:
    """Accounts as the system databases gave them at most ``ttl`` seconds ago.

    Roles come from groups, and groups change: they are read again on use, but not on every
    request of a busy Dashboard (each read walks the group database). ``ttl`` is the setting
    ``role_cache_seconds``: how long a change of groups may take to count; 0 reads every time.
    """

    def __init__(self, ttl: float, by_name: Callable[[str], Account] = lookup_account,
                 by_uid: Callable[[int], Account] = account_by_uid,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._by_name = by_name
        self._by_uid = by_uid
        self._clock = clock
        self._cache: dict[Hashable, tuple[float, Account]] = {}

    def by_name(self, name: str) -> Account:
        return self._get(("name", name), lambda: self._by_name(name))

    def by_uid(self, uid: int) -> Account:
        return self._get(("uid", uid), lambda: self._by_uid(uid))

    def _get(self, key: Hashable, read: Callable[[], Account]) -> Account:
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and now - cached[0] < self.ttl:
            return cached[1]
        account = read()  # UnknownUser is not cached: an account made now is found at once
        if len(self._cache) >= CACHE_MAX:
            self._cache.clear()
        self._cache[key] = (now, account)
        return account
