"""The REST API through a real daemon (in-memory sessions): each route's errors, roles, CSRF, tokens."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import itsdangerous

from tests.harness import Daemon
from tests.users import TestUser
from tests.web.webclient import COOKIE, Room, logon, signin, socket_client


def test_unknown_session_id_is_named(room: Room) -> None:
    a = logon(room.daemon, room.ana)
    with signin(room.daemon, room.admin) as admin:
        for path in ("/api/v1/sessions/4242", "/api/v1/sessions/4242/thumbnail"):
            answer = admin.get(path)
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "unknown-session"
            assert "4242" in answer.json()["error"]["message"]
        # in an action: that id fails, naming it; the other id of the request is still carried out
        answer = admin.post("/api/v1/sessions/block", json={"ids": ["4242", a]})
        assert answer.status_code == 200
        results = {r["id"]: r for r in answer.json()["results"]}
        assert results["4242"]["status"] == "unknown-session" and "4242" in results["4242"]["reason"]
        assert results[a]["status"] == "blocked"
        assert answer.json()["succeeded"] == 1 and answer.json()["failed"] == 1


def test_empty_selection_is_a_bad_request(room: Room) -> None:
    with signin(room.daemon, room.admin) as admin:
        for path in ("logoff", "disconnect", "block", "unblock"):
            for body in ({}, {"ids": []}):
                answer = admin.post(f"/api/v1/sessions/{path}", json=body)
                assert answer.status_code == 400, (path, body, answer.text)
                assert "empty selection" in answer.json()["error"]["message"]
        answer = admin.post("/api/v1/sessions/message", json={"text": "hi"})
        assert answer.status_code == 400
        both = admin.post("/api/v1/sessions/logoff", json={"ids": ["1"], "all": True})
        assert both.status_code == 400


def test_bad_thumbnail_size_and_bad_bodies(room: Room) -> None:
    a = logon(room.daemon, room.ana)
    with signin(room.daemon, room.admin) as admin:
        answer = admin.get(f"/api/v1/sessions/{a}/thumbnail", params={"size": "huge"})
        assert answer.status_code == 400
        error = answer.json()["error"]
        assert error["code"] == "invalid-request" and "size" in error["message"]
        assert admin.post("/api/v1/sessions/logoff", json={"ids": [a], "grace": -1}).status_code == 400
        assert admin.post("/api/v1/sessions/logoff", json={"ids": [a], "bogus": 1}).status_code == 400
        assert admin.post("/api/v1/sessions/message", json={"ids": [a], "text": ""}).status_code == 400
        assert admin.post("/api/v1/sessions/logoff", content=b"{not json",
                          headers={"Content-Type": "application/json"}).status_code == 400


def test_thumbnail_is_a_jpeg_with_an_etag(room: Room) -> None:
    a = logon(room.daemon, room.ana)
    with signin(room.daemon, room.admin) as admin:
        sizes = {}
        for size in ("small", "medium", "large"):
            answer = admin.get(f"/api/v1/sessions/{a}/thumbnail", params={"size": size})
            assert answer.status_code == 200
            assert answer.headers["content-type"] == "image/jpeg"
            assert answer.content[:3] == b"\xff\xd8\xff"
            sizes[size] = answer
        etag = sizes["medium"].headers["etag"]
        again = admin.get(f"/api/v1/sessions/{a}/thumbnail", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
        assert len({r.headers["etag"] for r in sizes.values()}) == 3


def test_missing_or_wrong_csrf_token_is_refused_with_a_cookie(room: Room) -> None:
    a = logon(room.daemon, room.ana)
    with signin(room.daemon, room.admin) as admin:
        token = admin.headers.pop("X-CSRF-Token")
        for headers in ({}, {"X-CSRF-Token": "wrong"}):
            answer = admin.post("/api/v1/sessions/block", json={"ids": [a]}, headers=headers)
            assert answer.status_code == 403
            assert answer.json()["error"]["code"] == "csrf-token"
        assert not room.daemon.sessions()[0]["blocked"]
        # reading needs no token; acting with it works
        assert admin.get("/api/v1/sessions").status_code == 200
        answer = admin.post("/api/v1/sessions/block", json={"ids": [a]}, headers={"X-CSRF-Token": token})
        assert answer.status_code == 200 and answer.json()["succeeded"] == 1
    # the Unix socket (peer credentials) and bearer tokens need none: no browser sends those by itself
    with socket_client(room.daemon) as root:
        assert root.post("/api/v1/sessions/unblock", json={"ids": [a]}).json()["succeeded"] == 1


def _cookie(daemon_state: Path, data: dict[str, object], age: float = 0) -> str:
    """A session cookie signed with the daemon's key, as if made ``age`` seconds ago."""
    secret = (daemon_state / "web-secret").read_text().strip()
    signer = itsdangerous.TimestampSigner(secret)
    signer.get_timestamp = lambda: int(time.time() - age)  # type: ignore[method-assign]
    return signer.sign(base64.b64encode(json.dumps(data).encode())).decode()


def test_expired_invalid_and_signed_out_cookies_are_refused(room: Room) -> None:
    daemon = room.daemon
    with signin(daemon, room.teacher) as teacher:
        good = teacher.cookies[COOKIE]
        data = json.loads(base64.b64decode(good.split(".")[0]))
        assert data["user"] == room.teacher.name
        # the same content, signed with our key, but older than the cookie's lifetime
        expired = _cookie(daemon.state_dir, data, age=13 * 3600)
        fresh = _cookie(daemon.state_dir, data, age=0)
        with httpx.Client(base_url=daemon.url) as other:
            other.cookies.set(COOKIE, fresh)
            assert other.get("/api/v1/whoami").json()["user"] == room.teacher.name
            for value in (expired, good[:-4] + "AAAA", "garbage"):
                other.cookies.set(COOKIE, value)
                answer = other.get("/api/v1/whoami")
                assert answer.status_code == 401, value
                assert answer.json()["error"]["code"] == "not-signed-in"
                page = other.get("/", follow_redirects=False)
                assert page.status_code == 303 and page.headers["location"] == "/signin"
        # signing out revokes the web session: a copy of the cookie stops working too
        answer = teacher.post("/signout", data={"csrf_token": teacher.headers["X-CSRF-Token"]})
        assert answer.status_code == 303
        with httpx.Client(base_url=daemon.url) as copy:
            copy.cookies.set(COOKIE, good)
            assert copy.get("/api/v1/whoami").status_code == 401


def test_standard_user_sees_and_acts_on_their_own_session_only(room: Room) -> None:
    a, b = logon(room.daemon, room.ana), logon(room.daemon, room.bia)
    with signin(room.daemon, room.ana) as ana:
        assert [s["id"] for s in ana.get("/api/v1/sessions").json()] == [a]
        assert ana.get(f"/api/v1/sessions/{a}/thumbnail").status_code == 200
        for path in (f"/api/v1/sessions/{b}", f"/api/v1/sessions/{b}/thumbnail", f"/ui/cards/{b}"):
            answer = ana.get(path)
            assert answer.status_code == 403, path
        for action in ("logoff", "disconnect", "block", "unblock"):
            answer = ana.post(f"/api/v1/sessions/{action}", json={"ids": [b]})
            assert answer.status_code == 403, action
            assert answer.json()["error"]["code"] == "not-permitted"
            assert answer.json()["results"][0]["status"] == "not-permitted"
        assert ana.post("/api/v1/sessions/message", json={"ids": [b], "text": "x"}).status_code == 403
        assert ana.get("/api/v1/audit").status_code == 403
        assert ana.post("/api/v1/tokens", json={}).status_code == 403
        # "all" for a standard user is nobody; their own session they may end
        assert ana.post("/api/v1/sessions/logoff", json={"all": True}).json()["results"] == []
        own = ana.post("/api/v1/sessions/logoff", json={"own": True, "force": True})
        assert own.status_code == 200 and own.json()["results"][0]["status"] == "ended"
    assert [s["id"] for s in room.daemon.sessions()] == [b]


def test_privileged_sessions_are_hidden_from_the_dashboard_by_default(room: Room) -> None:
    a, boss, tch = (logon(room.daemon, u) for u in (room.ana, room.admin, room.teacher))
    with signin(room.daemon, room.admin) as admin:
        assert admin.get(f"/api/v1/sessions/{a}/thumbnail").status_code == 200
        answer = admin.get(f"/api/v1/sessions/{tch}/thumbnail")
        assert answer.status_code == 403 and "show_privileged_sessions" in answer.json()["error"]["message"]
        page = admin.get("/").text
        assert f'id="card-{a}"' in page
        assert f'id="card-{tch}"' not in page and f'id="card-{boss}"' not in page
    with signin(room.daemon, room.teacher) as teacher:
        assert f'id="card-{boss}"' not in teacher.get("/").text
        assert teacher.get(f"/api/v1/sessions/{tch}/thumbnail").status_code == 200  # their own
        # and a Dashboard user may not end an administrator's session
        refused = teacher.post("/api/v1/sessions/logoff", json={"ids": [boss], "force": True})
        assert refused.status_code == 403 and "administrators" in refused.json()["error"]["message"]


def test_privileged_sessions_shown_when_the_setting_allows(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory("show_privileged_sessions = true", backends='["fake"]')
    admin, teacher = make_user("adm", "admin"), make_user("tch", "dashboard")
    tch = logon(daemon, teacher)
    with signin(daemon, admin) as client:
        assert client.get(f"/api/v1/sessions/{tch}/thumbnail").status_code == 200
        assert f'id="card-{tch}"' in client.get("/").text


def test_tokens_for_scripts(room: Room) -> None:
    a = logon(room.daemon, room.ana)
    with signin(room.daemon, room.admin) as admin:
        made = admin.post("/api/v1/tokens", json={"user": room.teacher.name, "note": "lab script"})
        assert made.status_code == 200, made.text
        token = made.json()["token"]
        listed = admin.get("/api/v1/tokens").json()
        assert [(t["id"], t["user"], t["note"]) for t in listed] == [
            (made.json()["id"], room.teacher.name, "lab script")]
        assert token not in json.dumps(listed)
        with httpx.Client(base_url=room.daemon.url, headers={"Authorization": f"Bearer {token}"}) as script:
            who = script.get("/api/v1/whoami").json()
            assert (who["user"], who["role"], who["via"]) == (room.teacher.name, "dashboard", "token")
            # no CSRF token needed with a bearer token
            assert script.post("/api/v1/sessions/block", json={"ids": [a]}).json()["succeeded"] == 1
            assert admin.delete(f"/api/v1/tokens/{made.json()['id']}").status_code == 204
            assert script.get("/api/v1/whoami").status_code == 401
        bad = admin.post("/api/v1/tokens", json={"user": "pdt-nobody-here"})
        assert bad.status_code == 404
    with httpx.Client(base_url=room.daemon.url, headers={"Authorization": "Bearer pdk_wrong"}) as wrong:
        assert wrong.get("/api/v1/sessions").status_code == 401
