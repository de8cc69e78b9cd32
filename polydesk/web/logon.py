"""Web log-on: passwords checked by PAM, failed attempts bounded per account and per address.

PAM service "login": on Debian it stacks common-auth and common-account, so
expired or locked accounts are refused as at a console. Never "su": as root it
lets anyone in (pam_rootok).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable

from polydesk.model import PolydeskError

PAM_SERVICE = "login"
MAX_FAILURES = 5  # per account: guessing one password stops quickly
MAX_ADDRESS_FAILURES = 30  # per address: a classroom behind one NAT address must not lock itself out
WINDOW_S = 300.0
PRUNE_AT = 10_000  # keys kept before expired ones are swept


class TooManyAttempts(PolydeskError):
    code = "too-many-attempts"

    def __init__(self, what: str, retry_after: int) -> None:
        minutes = max(1, math.ceil(retry_after / 60))
        super().__init__(f"too many failed log-on attempts for this {what}; "
                         f"try again in {minutes} minute{'s' if minutes > 1 else ''}")
        self.retry_after = retry_after
        self.what = what  # "account" or "address": the page says it in the reader's language


def pam_authenticate(user: str, password: str, service: str = PAM_SERVICE) -> bool:
    """True if PAM accepts ``password`` for ``user`` (authentication and account checks)."""
    import pam

    return bool(pam.pam().authenticate(user, password, service=service, resetcreds=False))


class FailureLimiter:
    """At most ``limit`` failures per account, ``address_limit`` per address, in a sliding ``window``."""

    def __init__(self, limit: int = MAX_FAILURES, address_limit: int = MAX_ADDRESS_FAILURES,
                 window: float = WINDOW_S) -> None:
        self.limit = limit
        self.address_limit = address_limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._failures.get(key)
        if times is None:
            return deque()
        while times and times[0] <= now - self.window:
            times.popleft()
        if not times:
            del self._failures[key]
        return times

    def check(self, user: str, address: str) -> None:
        """Raise TooManyAttempts if either the account or the address is over its limit."""
        now = time.monotonic()
        for what, key, limit in (("account", f"user:{user}", self.limit),
                                 ("address", f"addr:{address}", self.address_limit)):
            times = self._recent(key, now)
            if len(times) >= limit:
                raise TooManyAttempts(what, math.ceil(times[0] + self.window - now))

    def failed(self, user: str, address: str) -> None:
        now = time.monotonic()
        if len(self._failures) > PRUNE_AT:  # many names or addresses: drop whatever has expired
            for key in list(self._failures):
                self._recent(key, now)
        for key in (f"user:{user}", f"addr:{address}"):
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, user: str) -> None:
        self._failures.pop(f"user:{user}", None)


class LogonChecker:
    """Checks one log-on attempt: limits first (so a locked-out guess never reaches PAM), then PAM."""

    def __init__(
        self,
        authenticate: Callable[[str, str, str], bool] = pam_authenticate,
        limiter: FailureLimiter | None = None,
        service: str = PAM_SERVICE,
    ) -> None:
        self._authenticate = authenticate
        self.limiter = limiter or FailureLimiter()
        self.service = service
        self._running = asyncio.Semaphore(4)  # PAM's failure delay holds a thread for seconds

    async def check(self, user: str, password: str, address: str) -> bool:
        self.limiter.check(user, address)
        if not user or not password or len(user) > 64 or len(password) > 1024:
            self.limiter.failed(user, address)
            return False
        async with self._running:
            ok = await asyncio.to_thread(self._authenticate, user, password, self.service)
        if ok:
            self.limiter.succeeded(user)
        else:
            self.limiter.failed(user, address)
        return bool(ok)
