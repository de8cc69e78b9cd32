"""Guessing passwords at the sign-in page of a real daemon (real PAM passwords), and what survives
a restart (issue 13, points 10 and 11): forged X-Forwarded-For is not believed, a guesser is
slowed down without locking the real user out, the limits and a sign-out outlive the daemon."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from polydesk.web.signin import ADDRESS_FREE, GLOBAL_LIMIT, PAIR_FREE
from tests.harness import Daemon
from tests.users import TestUser
from tests.web.webclient import COOKIE, csrf_of, signin


def attempt(daemon: Daemon, user: str, password: str, source: str = "127.0.0.1",
            headers: dict[str, str] | None = None, client: httpx.Client | None = None) -> httpx.Response:
    """One sign-in at the real page, from the loopback address ``source``."""
    own = client is None
    if client is None:
        client = httpx.Client(base_url=daemon.url, timeout=60,
                              transport=httpx.HTTPTransport(local_address=source))
    try:
        form = client.get("/signin")
        return client.post("/signin", data={"user": user, "password": password,
                                           "csrf_token": csrf_of(form.text)}, headers=headers or {})
    finally:
        if own:
            client.close()


def sign_out(browser: httpx.Client) -> None:
    assert browser.post("/signout", data={"csrf_token": csrf_of(browser.get("/").text)}).status_code == 303


def test_forged_forwarded_for_does_not_hide_a_guesser(fake_daemon: Daemon) -> None:
    # Spraying: one empty-password guess per account, each claiming another address.
    answers = [attempt(fake_daemon, f"pdt-none-{i}", "", headers={"X-Forwarded-For": f"203.0.113.{i}"})
               for i in range(ADDRESS_FREE + 1)]
    assert [a.status_code for a in answers[:ADDRESS_FREE]] == [401] * ADDRESS_FREE
    assert answers[-1].status_code == 429, "a forged X-Forwarded-For gave every guess a fresh address"
    assert "for this address" in answers[-1].text
    # another address is not held back by that
    assert attempt(fake_daemon, "pdt-none-x", "", source="127.0.0.2").status_code == 401


def test_a_configured_proxy_is_believed(daemon_factory: Callable[..., Daemon]) -> None:
    daemon = daemon_factory('trusted_proxies = ["127.0.0.1"]', backends='["fake"]')
    for i in range(ADDRESS_FREE):
        attempt(daemon, f"pdt-none-{i}", "", headers={"X-Forwarded-For": "198.51.100.7"})
    held = attempt(daemon, "pdt-none-x", "", headers={"X-Forwarded-For": "198.51.100.7"})
    assert held.status_code == 429 and "for this address" in held.text
    other = attempt(daemon, "pdt-none-x", "", headers={"X-Forwarded-For": "198.51.100.8"})
    assert other.status_code == 401  # the proxy's other client is not held back


def test_a_guesser_does_not_lock_the_teacher_out(fake_daemon: Daemon,
                                                 make_user: Callable[..., TestUser]) -> None:
    teacher = make_user("tch", "dashboard")
    with httpx.Client(base_url=fake_daemon.url, timeout=60) as browser:  # the teacher's own browser
        assert attempt(fake_daemon, teacher.name, teacher.password, client=browser).status_code == 303
        sign_out(browser)
        # someone at the same address guesses the teacher's password until held back
        guesses = []
        while not guesses or guesses[-1].status_code == 401:
            guesses.append(attempt(fake_daemon, teacher.name, f"guess-{len(guesses)}"))
            assert len(guesses) <= 10, "the guesser was never held back"
        assert [g.status_code for g in guesses] == [401] * PAIR_FREE + [429]
        assert "for this account" in guesses[-1].text
        # the teacher's browser, which signed in here before, still gets in at once
        assert attempt(fake_daemon, teacher.name, teacher.password, client=browser).status_code == 303
    # and so does the teacher from another address that has not been guessing
    assert attempt(fake_daemon, teacher.name, teacher.password, source="127.0.0.3").status_code == 303


def test_the_whole_server_caps_guessing_from_many_addresses(fake_daemon: Daemon,
                                                            make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    with httpx.Client(base_url=fake_daemon.url, timeout=60) as browser:
        assert attempt(fake_daemon, ana.name, ana.password, client=browser).status_code == 303
        sign_out(browser)
        for i in range(GLOBAL_LIMIT):
            assert attempt(fake_daemon, f"pdt-none-{i}", "", source=f"127.0.{1 + i // 200}.{1 + i % 200}"
                           ).status_code == 401
        held = attempt(fake_daemon, ana.name, ana.password, source="127.0.9.9")
        assert held.status_code == 429 and "on this server" in held.text
        assert attempt(fake_daemon, ana.name, ana.password, client=browser).status_code == 303


def guess_until_held(daemon: Daemon, user: str, failures: int) -> int:
    """Make ``failures`` failed sign-ins, waiting out each hold (Retry-After); the last hold's
    Retry-After. Stops early at a hold too long to wait out."""
    made = 0
    while True:
        answer = attempt(daemon, user, "")
        if answer.status_code == 401:
            made += 1
            continue
        assert answer.status_code == 429, answer.text
        wait = int(answer.headers["retry-after"])
        if made >= failures or wait > 20:
            return wait
        time.sleep(wait)


def test_failure_counters_survive_a_restart(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana = make_user("ana")
    wait = guess_until_held(fake_daemon, ana.name, PAIR_FREE + 4)
    assert wait >= 10
    fake_daemon.stop()
    fake_daemon.start()
    held = attempt(fake_daemon, ana.name, ana.password)
    assert held.status_code == 429, "a restart forgave the guesser"


def test_signing_out_survives_a_restart(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    with signin(fake_daemon, ana) as out, signin(fake_daemon, bia) as stays:
        copied = out.cookies[COOKIE]
        assert out.post("/signout", data={"csrf_token": out.headers["X-CSRF-Token"]}).status_code == 303
        fake_daemon.stop()
        fake_daemon.start()
        replay = httpx.get(fake_daemon.url + "/api/v1/whoami", cookies={COOKIE: copied})
        assert replay.status_code == 401, "a signed-out cookie worked again after a restart"
        # a sign-in that was not ended still holds across the restart
        assert stays.get("/api/v1/whoami").json()["user"] == bia.name
