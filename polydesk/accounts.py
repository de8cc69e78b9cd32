"""Unix accounts and their groups, read from the system databases (NSS), and the system's
own rules for which accounts are people (/etc/login.defs, /etc/shells)."""

from __future__ import annotations

import grp
import logging
import os
import pwd
from collections.abc import Iterable
from pathlib import Path

from polydesk.model import Account, UnknownUser
from polydesk.policy import DesktopRules

LOGIN_DEFS = Path("/etc/login.defs")
SHELLS = Path("/etc/shells")
DEFAULT_UID_MIN = 1000  # shadow's default when login.defs does not say

log = logging.getLogger(__name__)


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
