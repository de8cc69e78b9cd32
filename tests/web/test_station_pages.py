"""Where signing in lands, the station page's Content-Security-Policy, and what the log-on page
says after a station signed out (in-memory sessions: fast)."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.stationclient import refusal
from tests.web.webclient import COOKIE, Room, csrf_of, logon, signin


def test_standard_users_land_on_their_desktop_the_others_on_the_dashboard(room: Room) -> None:
    with signin(room.daemon, room.ana) as ana:
        home = ana.get("/")
        assert 'id="station"' in home.text and 'data-home=""' in home.text
        assert '<script type="module" src="/static/station.js">' in home.text
        csp = home.headers["content-security-policy"]
        # noVNC draws JPEG rectangles and the cursor from data: URLs; nothing else is relaxed
        assert "img-src 'self' data:" in csp and "script-src 'self';" in csp and "unsafe" not in csp
        assert "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert ana.get("/session").headers["content-security-policy"].count("data:") == 0
    with signin(room.daemon, room.teacher) as teacher:
        home = teacher.get("/")
        assert 'id="grid"' in home.text and 'href="/desktop"' in home.text and 'id="enlarge"' in home.text
        desktop = teacher.get("/desktop")
        assert 'id="station"' in desktop.text and 'data-home="/"' in desktop.text
        assert 'id="privacy-notice"' not in desktop.text  # the notice is for standard users
    with httpx.Client(base_url=room.daemon.url) as anonymous:
        for path in ("/desktop", "/session"):
            answer = anonymous.get(path)
            assert answer.status_code == 303 and answer.headers["location"] == "/signin"


def test_the_log_on_page_says_why_a_station_signed_out(room: Room) -> None:
    with signin(room.daemon, room.ana) as ana:
        csrf = csrf_of(ana.get("/").text)
        answer = ana.post("/signout", data={"csrf_token": csrf, "then": "disconnected"})
        assert answer.status_code == 303 and answer.headers["location"] == "/signin?then=disconnected"
        page = ana.get("/signin?then=disconnected").text
        assert 'id="farewell"' in page and "Your session keeps running" in page
        assert "You are logged off." in ana.get("/signin?then=logged-off").text
        assert 'id="farewell"' not in ana.get("/signin?then=<script>").text  # only known words
    with signin(room.daemon, room.bia) as bia:
        csrf = csrf_of(bia.get("/").text)
        answer = bia.post("/signout", data={"csrf_token": csrf, "then": "https://evil.example"})
        assert answer.headers["location"] == "/signin"


def test_monitoring_off_means_no_view_or_control_of_others(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory("monitoring = false", backends='["fake"]')
    admin, ana = make_user("adm", "admin"), make_user("ana")
    a = logon(daemon, ana)
    with signin(daemon, admin) as client:
        headers = {"Cookie": f"{COOKIE}={client.cookies[COOKIE]}", "Origin": daemon.url}
        for mode in ("view", "control"):
            status, body = refusal(daemon, a, headers, mode)
            assert status == 403 and "monitoring is switched off" in body["error"]["message"]
    with signin(daemon, ana) as client:  # their own desk is theirs whatever the setting (no screen here)
        headers = {"Cookie": f"{COOKIE}={client.cookies[COOKIE]}", "Origin": daemon.url}
        assert refusal(daemon, a, headers, "own")[0] == 409
