"""Web sign-in: passwords checked by PAM; guessing slowed down without locking the real user out.

PAM service "login": on Debian it stacks common-auth and common-account, so
expired or locked accounts are refused as at a console. Never "su": as root it
lets anyone in (pam_rootok).

Who is guessing is told apart by *client*: the browser's device cookie when it holds one for
the account (set after that account's last good sign-in there, signed by the daemon), else the
address (the peer's, or what a ``trusted_proxies`` proxy says). The limits, all in
docs/security.md:

- one account from one client: ``PAIR_FREE`` failures, then each further attempt waits
  1 s, 2 s, 4 s ... up to ``MAX_DELAY_S``; a good password clears it;
- one address, any accounts: ``ADDRESS_FREE`` failures, then the same doubling;
- the whole daemon: at most ``GLOBAL_LIMIT`` failures per ``GLOBAL_WINDOW_S`` from clients
  without a device cookie.

A device cookie's client is held only by its own pair limit, so a browser that signed in to
an account before still gets in while others guess that account's password. No limit is on
the account alone: that would let anyone lock the teacher out. The counters are in the
state database, so a restart forgives nobody.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import itsdangerous

from polydesk.core.model import PolydeskError, StoreError

PAIR_FREE = 3
ADDRESS_FREE = 30  # a classroom behind one NAT address must not slow itself down
MAX_DELAY_S = 900.0
GLOBAL_LIMIT = 60
GLOBAL_WINDOW_S = 60.0
FORGET_S = 24 * 3600.0  # a counter not added to for this long is dropped
PRUNE_AT = 10_000  # counters kept in memory before those no longer holding anyone back are dropped
DEVICE_COOKIE = "polydesk_device"
DEVICE_MAX_AGE = 365 * 24 * 3600
_GLOBAL = "*"


class TooManyAttempts(PolydeskError):
    code = "too-many-attempts"

    def __init__(self, what: str, retry_after: int) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"too many failed log-on attempts for this {what}; "
                         f"try again in {minutes} minute{'s' if minutes > 1 else ''}")
        self.retry_after = retry_after
        self.what = what  # "account" (from here), "address" or "server": the page says it in its language


@dataclass(frozen=True)
class Client:
    """Where an attempt comes from: its address, and the device id of a valid device cookie."""

    address: str
    device: str | None = None


@dataclass(frozen=True)
class Hold:
    """One counter, as an administrator sees it (``polydesk signin holds``)."""

    kind: str  # "account" (one account from one client), "address" (any accounts) or "server"
    user: str | None
    client: str | None  # "192.0.2.7", or "browser 3f2a..." (a device cookie); None for the server
    failures: int
    until: float  # attempts wait until then (in the past: not held now, but counting)
    last: float


def _client_label(client: str) -> str:
    kind, _, value = client.partition(":")
    return value if kind == "addr" else f"browser {value[:8]}"


class FailureRecords(Protocol):
    """Where the counters outlive the daemon (the Store)."""

    def signin_failures(self) -> list[tuple[str, int, float]]: ...

    def put_signin_failures(self, rows: list[tuple[str, int, float]], drop: list[str]) -> None: ...


def wait_after(failures: int, free: int) -> float:
    """Seconds an attempt must wait after the last of ``failures`` failures."""
    return 0.0 if failures < free else min(MAX_DELAY_S, 2.0 ** (failures - free))


def pam_authenticate(user: str, password: str, service: str) -> bool:
    """True if PAM accepts ``password`` for ``user`` (authentication and account checks)."""
    import pam

    return bool(pam.pam().authenticate(user, password, service=service, resetcreds=False))


class FailureLimiter:
    def __init__(self, records: FailureRecords | None = None, clock: Callable[[], float] = time.time) -> None:
        self.records = records
        self.clock = clock
        # key -> [failures, time of the last one]; for _GLOBAL: [failures, start of its window]
        self._counts: dict[str, list[float]] = {}
        if records is not None:
            now = clock()
            self._counts = {key: [n, last] for key, n, last in records.signin_failures()
                            if now - last < FORGET_S}

    @staticmethod
    def _keys(user: str, client: Client) -> list[tuple[str, int, str]]:
        """(key, failures let through free, what it limits) for one attempt."""
        if client.device is not None:
            return [(f"pair\0{user}\0dev:{client.device}", PAIR_FREE, "account")]
        return [(f"pair\0{user}\0addr:{client.address}", PAIR_FREE, "account"),
                (f"addr\0{client.address}", ADDRESS_FREE, "address")]

    def check(self, user: str, client: Client) -> None:
        """Raise TooManyAttempts if this attempt has to wait."""
        now = self.clock()
        for key, free, what in self._keys(user, client):
            failures, last = self._counts.get(key, (0, now))
            ready = last + wait_after(int(failures), free)
            if ready > now:
                raise TooManyAttempts(what, math.ceil(ready - now))
        failures, start = self._counts.get(_GLOBAL, (0, now))
        if client.device is None and failures >= GLOBAL_LIMIT and now - start < GLOBAL_WINDOW_S:
            raise TooManyAttempts("server", math.ceil(start + GLOBAL_WINDOW_S - now))

    def failed(self, user: str, client: Client) -> None:
        now = self.clock()
        changed = []
        for key, _, _ in self._keys(user, client):
            count = self._counts.setdefault(key, [0, now])
            count[:] = [count[0] + 1, now]
            changed.append(key)
        if client.device is None:
            window = self._counts.setdefault(_GLOBAL, [0, now])
            window[:] = [1, now] if now - window[1] >= GLOBAL_WINDOW_S else [window[0] + 1, window[1]]
            changed.append(_GLOBAL)
        self._save(changed, self._prune(now) if len(self._counts) > PRUNE_AT else [])

    def succeeded(self, user: str, client: Client) -> None:
        key = self._keys(user, client)[0][0]
        if self._counts.pop(key, None) is not None:
            self._save([], [key])

    def holds(self) -> list[Hold]:
        """Every counter with failures in it, newest first: what holds someone back, or soon may."""
        now = self.clock()
        found = []
        for key, (n, last) in self._counts.items():
            kind, *rest = key.split("\0")
            if kind == "pair":
                user, client = rest
                until = last + wait_after(int(n), PAIR_FREE)
                found.append(Hold("account", user, _client_label(client), int(n), until, last))
            elif kind == "addr":
                until = last + wait_after(int(n), ADDRESS_FREE)
                found.append(Hold("address", None, rest[0], int(n), until, last))
            elif int(n) >= GLOBAL_LIMIT and now - last < GLOBAL_WINDOW_S:
                found.append(Hold("server", None, None, int(n), last + GLOBAL_WINDOW_S, last))
        return sorted(found, key=lambda h: -h.last)

    def clear(self, user: str | None = None, address: str | None = None, everything: bool = False) -> int:
        """Forget counters: ``user``'s (from every client, or at ``address``), ``address``'s own
        and its accounts', or all of them. How many were dropped."""
        def matches(key: str) -> bool:
            kind, *rest = key.split("\0")
            if everything:
                return True
            if kind == "pair":
                return ((user is None or rest[0] == user)
                        and (address is None or rest[1] == f"addr:{address}"))
            return kind == "addr" and user is None and rest[0] == address
        dropped = [key for key in self._counts if matches(key)]
        for key in dropped:
            del self._counts[key]
        if self.records is not None and dropped:
            self.records.put_signin_failures([], dropped)  # a full disk says so: not cleared after a restart
        return len(dropped)

    def _prune(self, now: float) -> list[str]:
        """Drop the counters that hold nobody back any more (a flood of fresh addresses)."""
        idle = [key for key, (n, last) in self._counts.items() if key != _GLOBAL and
                (now - last >= FORGET_S or last + wait_after(int(n), PAIR_FREE) < now - GLOBAL_WINDOW_S)]
        for key in idle:
            del self._counts[key]
        return idle

    def _save(self, changed: list[str], dropped: list[str]) -> None:
        if self.records is None:
            return
        rows = [(key, int(self._counts[key][0]), self._counts[key][1]) for key in changed]
        # On a full disk the counters in memory still hold; only a restart then forgets them.
        with contextlib.suppress(StoreError):
            self.records.put_signin_failures(rows, dropped)


class DeviceCookies:
    """The signed cookie a browser gets for an account after a good sign-in there."""

    def __init__(self, secret: str) -> None:
        self._signer = itsdangerous.Signer(secret, salt="polydesk-device")

    def issue(self, user: str) -> str:
        return self._signer.sign(f"{user}:{secrets.token_urlsafe(12)}").decode()

    def device(self, user: str, cookie: str | None) -> str | None:
        """The device id in ``cookie`` if it was issued by this daemon for ``user``."""
        if not cookie:
            return None
        try:
            value = self._signer.unsign(cookie).decode()
        except (itsdangerous.BadSignature, UnicodeDecodeError):
            return None
        owner, _, device = value.rpartition(":")
        return device if owner == user and device else None


class SigninChecker:
    """Checks one sign-in attempt: limits first (so a held-back guess never reaches PAM), then PAM."""

    def __init__(
        self,
        authenticate: Callable[[str, str, str], bool] = pam_authenticate,
        limiter: FailureLimiter | None = None,
        service: str = "login",
    ) -> None:
        self._authenticate = authenticate
        self.limiter = limiter or FailureLimiter()
        self.service = service
        self._running = asyncio.Semaphore(4)  # PAM's failure delay holds a thread for seconds

    async def check(self, user: str, password: str, client: Client) -> bool:
        self.limiter.check(user, client)
        if not user or not password or len(user) > 64 or len(password) > 1024:
            self.limiter.failed(user, client)
            return False
        async with self._running:
            ok = await asyncio.to_thread(self._authenticate, user, password, self.service)
        if ok:
            self.limiter.succeeded(user, client)
        else:
            self.limiter.failed(user, client)
        return bool(ok)
