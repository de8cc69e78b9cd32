"""Real Unix test accounts (prefix ``pdt-``), created and removed by the tests."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import subprocess
import time
from dataclasses import dataclass

from tests.leaks import claim_uid

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
    # A random uid far from the usual range: a uid just freed by another test run on this
    # machine, reused at once, would make that run's processes look like ours.
    uid = _free_uid()
    claim_uid(uid)  # its processes are this run's, whatever becomes of their parent
    subprocess.run(["groupadd", "--gid", str(uid), name], check=True)
    cmd = ["useradd", "--create-home", "--shell", "/bin/bash", "--uid", str(uid), "--gid", str(uid)]
    if groups:
        cmd += ["--groups", ",".join(groups)]
    subprocess.run([*cmd, name], check=True, stderr=subprocess.PIPE)  # warns: uid above UID_MAX
    password = secrets.token_urlsafe(12)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    entry = pwd.getpwnam(name)
    return TestUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir, password)


def _free_uid() -> int:
    for _ in range(1000):
        uid = secrets.randbelow(900_000) + 100_000
        try:
            pwd.getpwuid(uid)
        except KeyError:
            try:
                grp.getgrgid(uid)
            except KeyError:
                return uid
    raise RuntimeError("no free uid found")


def remove_user(user: TestUser) -> None:
    if not user.name.startswith(PREFIX):  # never touch an account we did not make
        raise ValueError(user.name)
    subprocess.run(["userdel", "--remove", "--force", user.name],
                   check=False, stderr=subprocess.DEVNULL)
    subprocess.run(["groupdel", user.name], check=False, stderr=subprocess.DEVNULL)


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


def settled_pids(uid: int, quiet: float = 1.0, timeout: float = 15.0) -> set[int]:
    """The user's processes once their desktop has finished starting: the same set for
    ``quiet`` seconds. A desktop still starting forks and ends processes of its own (openbox's
    autostart; the CI saw one replaced while a test compared before and after)."""
    deadline = time.monotonic() + timeout
    seen, since = set(user_pids(uid)), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = set(user_pids(uid))
        if now != seen:
            seen, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return seen
    raise AssertionError(f"the processes of uid {uid} did not settle in {timeout} s: {sorted(seen)}")


def display_files(number: int | str, uid: int) -> list[str]:
    """The X socket and lock of display ``number`` still owned by ``uid`` (Xvnc runs as the
    session's user). Files of the same number owned by someone else belong to a newer
    display that another daemon on this machine started meanwhile, not to ours."""
    left = []
    for path in (f"/tmp/.X11-unix/X{number}", f"/tmp/.X{number}-lock"):
        try:
            if os.lstat(path).st_uid == uid:
                left.append(path)
        except FileNotFoundError:
            pass
    return left
