"""No page of the daemon loads anything from another origin, and every page has a CSP
(issue 13, point 14: the API explorer loaded swagger-ui from a public CDN, unpinned, into
the daemon's origin, with no CSP)."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit

import httpx

from tests.web.webclient import Room, logon, signin

REFERENCE = re.compile(r"""(?:\bsrc|\bhref|\baction|\bcontent)\s*=\s*["']([^"']*)["']"""
                       r"""|url\(\s*["']?([^"')]+)""")


def foreign(base: str, html: str) -> list[str]:
    """References in ``html`` to an origin other than ``base``'s."""
    ours = urlsplit(base).netloc
    found = []
    for match in REFERENCE.finditer(html):
        value = (match.group(1) or match.group(2) or "").strip()
        if not value or value.startswith(("#", "data:")) or not re.match(r"^(\w+:|//|/)", value):
            continue
        target = urlsplit(urljoin(base + "/", value))
        if target.scheme in ("http", "https", "ws", "wss", "") and target.netloc not in ("", ours):
            found.append(value)
    return found


def check(client: httpx.Client, path: str, status: int = 200) -> None:
    answer = client.get(path)
    assert answer.status_code == status, (path, answer.status_code)
    csp = answer.headers.get("content-security-policy", "")
    assert "default-src 'none'" in csp and "script-src 'self'" in csp, (path, csp)
    if answer.headers.get("content-type", "").startswith(("text/html", "text/css")):
        assert foreign(str(client.base_url), answer.text) == [], path


def test_no_page_references_another_origin_and_each_has_a_csp(room: Room) -> None:
    logon(room.daemon, room.ana)
    with httpx.Client(base_url=room.daemon.url, timeout=30) as anonymous:
        check(anonymous, "/api/v1/docs", status=404)  # no API explorer: the document is all there is
        check(anonymous, "/signin")
        assert anonymous.get("/api/v1/openapi.json").json()["openapi"].startswith("3.")
    with signin(room.daemon, room.admin) as admin:
        for path in ("/", "/desktop", "/session", "/static/dashboard.css", "/static/station.css",
                     "/static/fleet.css"):
            check(admin, path)
    with signin(room.daemon, room.ana) as ana:
        check(ana, "/")


def test_the_checker_sees_a_cdn() -> None:
    page = '<script src="https://cdn.example.net/x.js"></script><link href="/static/a.css">'
    assert foreign("http://127.0.0.1:8765", page) == ["https://cdn.example.net/x.js"]
