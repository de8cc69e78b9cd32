"""The failed log-on limiter on its own: per account, per address, a sliding window, bounded memory."""

from __future__ import annotations

import pytest

from polydesk.web import logon
from polydesk.web.logon import FailureLimiter, LogonChecker, TooManyAttempts


def test_limits_slide_with_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(logon.time, "monotonic", lambda: now[0])
    limiter = FailureLimiter(limit=2, address_limit=3, window=60)
    limiter.failed("ana", "10.0.0.1")
    limiter.failed("ana", "10.0.0.1")
    with pytest.raises(TooManyAttempts, match="account") as refused:
        limiter.check("ana", "10.0.0.2")
    assert refused.value.retry_after == 60
    limiter.check("bia", "10.0.0.1")  # the address is still under its own limit
    limiter.failed("bia", "10.0.0.1")
    with pytest.raises(TooManyAttempts, match="address"):
        limiter.check("caio", "10.0.0.1")
    now[0] += 61
    limiter.check("ana", "10.0.0.1")  # the window has passed


def test_success_clears_the_account_and_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(logon.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(logon, "PRUNE_AT", 100)
    limiter = FailureLimiter(limit=1, window=10)
    limiter.failed("ana", "a")
    limiter.succeeded("ana")
    limiter.check("ana", "b")
    for i in range(200):
        limiter.failed(f"user{i}", f"addr{i}")
    now[0] += 11
    limiter.failed("late", "x")
    assert len(limiter._failures) == 2


async def test_checker_refuses_before_asking_pam() -> None:
    asked: list[str] = []

    def fake_pam(user: str, password: str, service: str) -> bool:
        asked.append(user)
        return password == "right"

    checker = LogonChecker(fake_pam, FailureLimiter(limit=2))
    assert await checker.check("ana", "right", "a") is True
    assert await checker.check("ana", "", "a") is False  # empty: refused without PAM
    assert await checker.check("ana", "wrong", "a") is False
    with pytest.raises(TooManyAttempts):
        await checker.check("ana", "right", "a")
    assert asked == ["ana", "ana"]
