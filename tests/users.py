"""Real Unix test accounts (prefix ``pdt-``), created and removed by the tests."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess
from dataclasses import dataclass

PREFIX = "pdt-"
ADMIN_GROUP = "pdt-admin"
DASHBOARD_GROUP = "pdt-dashboard"


@dataclass(frozen=True)
class TestUser:
    name: str
    uid: int
    gid: int
    home: str
    password: str

    __test__ = False  # not a test class, whatever pytest thinks of the name


def ensure_group(name: str) -> None:
    try:
        grp.getgrnam(name)
    except KeyError:
        subprocess.run(["groupadd", "-f", name], check=True)


def create_user(stem: str, groups: tuple[str, ...] = ()) -> TestUser:
    """A fresh account with a home, a bash shell and a random password."""
    name = f"{PREFIX}{stem}-{secrets.token_hex(3)}"
    if len(name) > 31:
        raise ValueError(f"user name too long: {name}")
    for group in groups:
        ensure_group(group)
    cmd = ["useradd", "--create-home", "--shell", "/bin/bash", "--user-group"]
    if groups:
        cmd += ["--groups", ",".join(groups)]
    subprocess.run([*cmd, name], check=True)
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    entry = pwd.getpwnam(name)
    return TestUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir, password)


def remove_user(user: TestUser) -> None:
    if not user.name.startswith(PREFIX):  # never touch an account we did not make
        raise ValueError(user.name)
    subprocess.run(["userdel", "--remove", "--force", user.name],
                   check=False, stderr=subprocess.DEVNULL)


def user_pids(uid: int) -> list[int]:
    """Processes of ``uid`` that still run. A zombie is dead, only not yet reaped by its
    parent (and on this test machine PID 1 reaps no orphans), so it does not count."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if state not in ("Z", "X"):
            pids.append(int(entry))
    return pids
