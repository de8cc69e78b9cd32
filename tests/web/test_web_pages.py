"""The sign-in page (real PAM passwords), cookies, failed-attempt limits, security headers, pages by role."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable

import httpx

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.webclient import COOKIE, Room, csrf_of, logon, signin


def _try(daemon: Daemon, user: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=daemon.url, timeout=60) as client:
        form = client.get("/signin")
        return client.post("/signin", data={"user": user, "password": password,
                                           "csrf_token": csrf_of(form.text)})


def test_signin_with_the_real_password_sets_a_fresh_strict_cookie(room: Room) -> None:
    with httpx.Client(base_url=room.daemon.url) as client:
        form = client.get("/signin")
        assert form.status_code == 200 and 'name="password"' in form.text
        before = client.cookies[COOKIE]
        answer = client.post("/signin", data={"user": room.teacher.name, "password": room.teacher.password,
                                             "csrf_token": csrf_of(form.text)})
        assert answer.status_code == 303 and answer.headers["location"] == "/"
        # the session's cookie (beside it comes the device cookie that the sign-in limits know it by)
        cookie = next(c for c in answer.headers.get_list("set-cookie") if c.startswith(f"{COOKIE}="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain http here; over https the cookie is Secure
        device = next(c for c in answer.headers.get_list("set-cookie") if c.startswith("polydesk_device="))
        device_flags = {part.strip().lower() for part in device.split(";")}
        assert {"httponly", "samesite=strict", "path=/signin"} <= device_flags
        # session fixation: the signed-in session is a new one, with a new CSRF token
        after = client.cookies[COOKIE]
        assert after != before
        home = client.get("/")
        assert csrf_of(home.text) != csrf_of(form.text)
        assert "Log off users" in home.text and "Log off selected users" in home.text
        # the CSRF token of the sign-in form does not work in the signed-in session
        stale = client.post("/api/v1/sessions/block", json={"all": True},
                            headers={"X-CSRF-Token": csrf_of(form.text)})
        assert stale.status_code == 403


def test_the_old_address_of_the_sign_in_page_leads_to_it(room: Room) -> None:
    # GET /login was the sign-in page's address: lab PCs keep it as a bookmark
    with httpx.Client(base_url=room.daemon.url) as client:
        for old, new in (("/login", "/signin"), ("/login?then=disconnected", "/signin?then=disconnected")):
            moved = client.get(old)
            assert moved.status_code == 303 and moved.headers["location"] == new
        followed = client.get("/login", follow_redirects=True)
        assert followed.url.path == "/signin" and 'name="password"' in followed.text


def test_over_https_the_cookie_is_secure(daemon_factory: Callable[..., Daemon]) -> None:
    # X-Forwarded-Proto is believed from the TLS proxies in trusted_proxies, and from nobody else
    daemon = daemon_factory('trusted_proxies = ["127.0.0.1"]', backends='["fake"]')
    with httpx.Client(base_url=daemon.url, headers={"X-Forwarded-Proto": "https"}) as client:
        form = client.get("/signin")
        assert "secure" in form.headers["set-cookie"].lower()
    with httpx.Client(base_url=daemon.url, headers={"X-Forwarded-Proto": "https"},
                      transport=httpx.HTTPTransport(local_address="127.0.0.2")) as client:
        assert "secure" not in client.get("/signin").headers["set-cookie"].lower()


def test_wrong_password_and_unknown_account_are_refused(room: Room) -> None:
    for user, password in ((room.ana.name, "not-the-password"), ("pdt-nobody", "x"), (room.ana.name, "")):
        answer = _try(room.daemon, user, password)
        assert answer.status_code == 401, (user, answer.text)
        assert "Wrong user name or password." in answer.text
    with httpx.Client(base_url=room.daemon.url) as client:
        form = client.get("/signin")
        wrong = client.post("/signin", data={"user": room.ana.name, "password": "nope",
                                             "csrf_token": csrf_of(form.text)})
        assert wrong.status_code == 401 and client.get("/api/v1/whoami").status_code == 401
        forged = client.post("/signin", data={"user": room.ana.name, "password": room.ana.password,
                                              "csrf_token": "forged"})
        assert forged.status_code == 403 and "expired" in forged.text
        assert client.get("/api/v1/whoami").status_code == 401


def test_failed_attempts_are_limited_per_account(room: Room) -> None:
    # PAM makes every failure last seconds (pam_faildelay): try them side by side
    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        failures = list(pool.map(lambda i: _try(room.daemon, room.bia.name, f"wrong-{i}"), range(5)))
    assert [f.status_code for f in failures] == [401] * 5
    blocked = _try(room.daemon, room.bia.name, room.bia.password)  # even the right password, for now
    assert blocked.status_code == 429
    assert "Too many failed log-on attempts for this account." in blocked.text
    assert 0 < int(blocked.headers["retry-after"]) <= 300
    # another account from the same address still gets in (the address has its own, larger limit)
    with signin(room.daemon, room.ana) as ana:
        assert ana.get("/api/v1/whoami").json()["user"] == room.ana.name


def test_failed_attempts_are_limited_per_address(room: Room) -> None:
    # an empty password fails before PAM (no delay), and counts all the same
    failures = [_try(room.daemon, f"pdt-none-{i}", "") for i in range(30)]
    assert [f.status_code for f in failures] == [401] * 30
    blocked = _try(room.daemon, room.ana.name, room.ana.password)
    assert blocked.status_code == 429 and "for this address" in blocked.text


def test_security_headers_and_no_inline_code(room: Room) -> None:
    logon(room.daemon, room.ana)
    with signin(room.daemon, room.admin) as admin:
        for path in ("/", "/signin", "/api/v1/sessions", "/static/dashboard.js"):
            answer = admin.get(path)
            csp = answer.headers["content-security-policy"]
            assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "unsafe-eval" not in csp
            assert "frame-ancestors 'none'" in csp
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-frame-options"] == "DENY"
        page = admin.get("/").text
        assert "<script>" not in page and " style=" not in page and " onclick=" not in page
        assert '<script src="/static/htmx.min.js"' in page
        htmx = admin.get("/static/htmx.min.js")
        assert htmx.status_code == 200 and "Zero-Clause BSD" in htmx.text[:300]


def test_user_text_is_escaped(fake_daemon: Daemon, make_user: Callable[..., TestUser]) -> None:
    admin = make_user("adm", "admin")
    with httpx.Client(base_url=fake_daemon.url) as client:
        form = client.get("/signin")
        answer = client.post("/signin", data={"user": '<script>alert(1)</script>', "password": "x",
                                             "csrf_token": csrf_of(form.text)})
        assert "<script>alert(1)</script>" not in answer.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in answer.text
    with signin(fake_daemon, admin) as client:
        assert client.get("/").status_code == 200


def test_standard_user_page_shows_only_their_session_and_the_privacy_notice(room: Room) -> None:
    a, b = logon(room.daemon, room.ana), logon(room.daemon, room.bia)
    with signin(room.daemon, room.ana) as ana:
        station = ana.get("/").text  # a standard user lands on their desktop (the station page)
        assert 'id="station"' in station and 'id="privacy-notice"' in station
        assert "Log off users" not in station and room.bia.name not in station
        page = ana.get("/session").text
        assert f'id="card-{a}"' in page and f'id="card-{b}"' not in page
        assert room.bia.name not in page
        assert 'id="privacy-notice"' in page and "can see your screen" in page
        assert "Log off users" not in page
        disconnected = ana.post("/ui/own/disconnect")
        assert disconnected.status_code == 200 and "Disconnected" in disconnected.text
        ended = ana.post("/ui/own/logoff")
        assert ended.status_code == 200 and "Logging off" in ended.text
        missing_csrf = ana.post("/ui/own/logon", headers={"X-CSRF-Token": ""})
        assert missing_csrf.status_code == 403
        started = ana.post("/ui/own/logon")
        assert started.status_code == 200 and "Started" in started.text


def test_privacy_notice_can_be_switched_off(daemon_factory: Callable[..., Daemon],
                                            make_user: Callable[..., TestUser]) -> None:
    daemon = daemon_factory("privacy_notice = false", backends='["fake"]')
    ana = make_user("ana")
    logon(daemon, ana)
    with signin(daemon, ana) as client:
        assert 'id="privacy-notice"' not in client.get("/").text


def test_monitoring_off_means_no_thumbnails_of_others(daemon_factory: Callable[..., Daemon],
                                                      make_user: Callable[..., TestUser]) -> None:
    daemon = daemon_factory("monitoring = false", backends='["fake"]')
    admin, ana = make_user("adm", "admin"), make_user("ana")
    a = logon(daemon, ana)
    with signin(daemon, admin) as client:
        assert client.get(f"/api/v1/sessions/{a}/thumbnail").status_code == 403
        page = client.get("/").text
        assert f'id="card-{a}"' in page and "Monitoring is off" in page
    with signin(daemon, ana) as client:
        assert client.get(f"/api/v1/sessions/{a}/thumbnail").status_code == 200
        assert 'id="privacy-notice"' not in client.get("/").text
