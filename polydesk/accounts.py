"""Unix accounts and their groups, read from the system databases (NSS)."""

from __future__ import annotations

import grp
import os
import pwd

from polydesk.model import Account, UnknownUser


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
