"""The failed sign-in limiter on its own: growing waits per account and client, per address, a
cap for the whole server, known browsers never held back by others, bounded memory."""

from __future__ import annotations

import pytest

from polydesk.web import signin
from polydesk.web.signin import (
    ADDRESS_FREE,
    GLOBAL_LIMIT,
    GLOBAL_WINDOW_S,
    MAX_DELAY_S,
    PAIR_FREE,
    Client,
    DeviceCookies,
    FailureLimiter,
    SigninChecker,
    TooManyAttempts,
)

A, B = Client("10.0.0.1"), Client("10.0.0.2")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Records:
    """The store's side of the limiter, in memory."""

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, float]] = {}

    def signin_failures(self) -> list[tuple[str, int, float]]:
        return [(key, n, last) for key, (n, last) in self.rows.items()]

    def put_signin_failures(self, rows: list[tuple[str, int, float]], drop: list[str]) -> None:
        self.rows.update({key: (n, last) for key, n, last in rows})
        for key in drop:
            self.rows.pop(key, None)


def test_the_wait_grows_per_account_and_client_and_others_still_get_in() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    for _ in range(PAIR_FREE):
        limiter.check("ana", A)
        limiter.failed("ana", A)
    waits = []
    for _ in range(6):
        with pytest.raises(TooManyAttempts, match="account") as held:
            limiter.check("ana", A)
        waits.append(held.value.retry_after)
        clock.now += held.value.retry_after
        limiter.check("ana", A)
        limiter.failed("ana", A)
    assert waits == [1, 2, 4, 8, 16, 32]
    limiter.check("ana", B)  # the same account from another address: not held
    limiter.check("bia", A)  # another account from the guessing address: not held
    limiter.succeeded("ana", A)  # the right password clears that account's count from there
    limiter.check("ana", A)
    for _ in range(30):
        clock.now += MAX_DELAY_S
        limiter.failed("ana", B)
    with pytest.raises(TooManyAttempts) as held:
        limiter.check("ana", B)
    assert held.value.retry_after == MAX_DELAY_S  # the wait stops growing


def test_a_browser_that_signed_in_before_is_not_held_by_others_guessing() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    devices = DeviceCookies("k" * 40)
    cookie = devices.issue("tch")
    assert devices.device("ana", cookie) is None  # a cookie names its account
    assert devices.device("tch", cookie[:-2] + "xx") is None  # and is signed
    known = Client(A.address, devices.device("tch", cookie))
    for _ in range(ADDRESS_FREE + GLOBAL_LIMIT):  # the same address guesses the teacher's password
        limiter.failed("tch", A)
    with pytest.raises(TooManyAttempts):
        limiter.check("tch", A)
    limiter.check("tch", known)
    for _ in range(PAIR_FREE):  # its own mistakes count against it alone
        limiter.failed("tch", known)
    with pytest.raises(TooManyAttempts, match="account"):
        limiter.check("tch", known)


def test_one_address_guessing_many_accounts_is_held_and_the_server_has_a_cap() -> None:
    clock = Clock()
    limiter = FailureLimiter(clock=clock)
    for i in range(ADDRESS_FREE):
        limiter.failed(f"user{i}", A)
    with pytest.raises(TooManyAttempts, match="address"):
        limiter.check("ana", A)
    limiter.check("ana", B)
    clock.now += GLOBAL_WINDOW_S
    for i in range(GLOBAL_LIMIT):  # from many addresses: each alone under every limit
        limiter.failed("ana", Client(f"10.1.{i // 250}.{i % 250}"))
    with pytest.raises(TooManyAttempts, match="server") as held:
        limiter.check("bia", Client("10.9.9.9"))
    assert 0 < held.value.retry_after <= GLOBAL_WINDOW_S
    clock.now += GLOBAL_WINDOW_S
    limiter.check("bia", Client("10.9.9.9"))


def test_counters_outlive_the_limiter_and_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    clock, records = Clock(), Records()
    limiter = FailureLimiter(records, clock=clock)
    for _ in range(PAIR_FREE + 2):
        limiter.failed("ana", A)
    again = FailureLimiter(records, clock=clock)  # a restarted daemon
    with pytest.raises(TooManyAttempts, match="account"):
        again.check("ana", A)
    monkeypatch.setattr(signin, "PRUNE_AT", 100)
    for i in range(300):
        again.failed(f"user{i}", Client(f"addr{i}"))
        clock.now += 1
    clock.now += GLOBAL_WINDOW_S + 10
    again.failed("late", Client("x"))
    assert len(again._counts) < 100
    assert len(records.rows) < 100


async def test_checker_refuses_before_asking_pam() -> None:
    asked: list[str] = []

    def fake_pam(user: str, password: str, service: str) -> bool:
        asked.append(user)
        return password == "right"

    checker = SigninChecker(fake_pam, FailureLimiter())
    assert await checker.check("ana", "right", A) is True
    assert await checker.check("ana", "", A) is False  # empty: refused without PAM
    for _ in range(PAIR_FREE - 1):
        assert await checker.check("ana", "wrong", A) is False
    with pytest.raises(TooManyAttempts):
        await checker.check("ana", "right", A)
    assert asked == ["ana"] * PAIR_FREE
