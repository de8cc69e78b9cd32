"""The thumbnail route's fast path (web/thumbs.ThumbnailFastPath) answers exactly as the route:
the same headers, the middlewares' too, and every refusal left to the documented route."""

from __future__ import annotations

from polydesk.web.security import HEADERS
from tests.web.webclient import Room, logon, signin, socket_client


def test_thumbnail_answers_carry_every_header_whichever_way_they_go(room: Room) -> None:
    a = logon(room.daemon, room.ana)
    with socket_client(room.daemon) as root, signin(room.daemon, room.teacher) as teacher:
        answers = {
            "root": root.get(f"/api/v1/sessions/{a}/thumbnail"),
            "web": teacher.get(f"/api/v1/sessions/{a}/thumbnail", params={"size": "small", "v": "7"}),
            "refused": teacher.get(f"/api/v1/sessions/{a}/thumbnail", params={"size": "huge"}),
        }
        for name, answer in answers.items():
            for header in ("X-Content-Type-Options", "Cross-Origin-Resource-Policy"):
                assert answer.headers.get(header) == HEADERS[header], (name, header)
        for name in ("root", "web"):
            answer = answers[name]
            assert answer.status_code == 200 and answer.headers["content-type"] == "image/jpeg"
            assert "content-security-policy" not in answer.headers  # a picture is no document
            assert answer.headers["cache-control"] == "private, no-cache"
            assert answer.headers["etag"].startswith('"') and answer.headers["x-thumbnail-version"] == "0"
        refused = answers["refused"]
        assert refused.status_code == 400 and refused.json()["error"]["code"] == "invalid-request"
        etag = answers["root"].headers["etag"]
        again = root.get(f"/api/v1/sessions/{a}/thumbnail", headers={"If-None-Match": f'W/"x", {etag}'})
        assert again.status_code == 304 and again.headers["etag"] == etag and not again.content
        assert root.get(f"/api/v1/sessions/{a}/thumbnail", params=[("size", "small"), ("size", "large")]
                        ).status_code in (200, 400)  # whatever the route says, not the fast path's guess
        assert root.post(f"/api/v1/sessions/{a}/thumbnail").status_code == 405
