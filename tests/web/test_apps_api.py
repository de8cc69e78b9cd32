"""The applications' REST routes x callers x targets, on a live daemon (FakeBackend: the routes,
validation, policy and audit are the real ones); and a web caller needs the CSRF token."""

from __future__ import annotations

import json

import httpx

from tests.web.webclient import Room, logon, signin

# Columns: launch, apps (list), close-app (by name); "ok" = 200 with the result carried out.
EXPECTED = {
    "standard": {"own": "ok 200 ok", "standard": "403 403 403", "dashboard": "403 403 403",
                 "admin": "403 403 403", "unknown": "unknown 404 unknown"},
    "dashboard": {"own": "ok 200 ok", "standard": "ok 200 ok", "dashboard": "ok 200 ok",
                  "admin": "403 403 403", "unknown": "unknown 404 unknown"},
    "admin": {"own": "ok 200 ok", "standard": "ok 200 ok", "dashboard": "ok 200 ok",
              "admin": "ok 200 ok", "unknown": "unknown 404 unknown"},
}


def _cell(answer: httpx.Response) -> str:
    if answer.status_code != 200 or "results" not in answer.json():
        return str(answer.status_code)
    result = answer.json()["results"][0]
    return "ok" if result["ok"] else "unknown" if result["status"] == "unknown-session" else result["status"]


def test_routes_by_role_and_target(room: Room) -> None:
    d = room.daemon
    users = {"standard": room.ana, "dashboard": room.teacher, "admin": room.admin}
    sessions = {role: logon(d, user) for role, user in users.items()}
    sessions["other-standard"] = logon(d, room.bia)
    tokens = {role: d.cli("token", "create", "--user", user.name).stdout.split()[-1]
              for role, user in users.items()}
    actual = {}
    for role in EXPECTED:
        targets = {"own": sessions[role], "standard": sessions["other-standard"],
                   "dashboard": sessions["dashboard"], "admin": sessions["admin"], "unknown": "999"}
        with httpx.Client(base_url=f"{d.url}/api/v1", headers={"Authorization": f"Bearer {tokens[role]}"},
                          timeout=30) as api:
            row = {}
            for target, sid in targets.items():
                launched = api.post("/sessions/launch", json={"ids": [sid], "argv": ["xterm"]})
                listed = api.get(f"/sessions/{sid}/apps")
                closed = api.post("/sessions/close-app", json={"ids": [sid], "name": "xterm"})
                row[target] = f"{_cell(launched)} {listed.status_code} {_cell(closed)}"
            actual[role] = row
    for role, row in EXPECTED.items():
        for target, cells in row.items():
            if target == role != "standard":  # one Dashboard user, one administrator: their own
                cells = row["own"]
            assert actual[role][target] == cells, f"{role} -> {target}: {actual[role][target]}"
    launched = d.cli("launch", "--all", "--", "xterm", "-e", "top", user=room.teacher)
    assert launched.returncode == 0 and launched.stdout.count("launched") == 2  # not the admin's, nor own
    closed = d.cli("close", "--name", "xterm", "--all", "--json", user=room.teacher)
    assert closed.returncode == 0, closed.stderr
    assert {r["status"] for r in json.loads(closed.stdout)["results"]} == {"closed"}
    refused = [r for r in d.cli_json("audit") if r["action"] == "launch" and not r["allowed"]]
    assert refused and all(r["detail"]["argv"] == ["xterm"] for r in refused)


def test_a_web_caller_needs_the_csrf_token_and_sees_what_it_launched(room: Room) -> None:
    ana = logon(room.daemon, room.ana)
    with signin(room.daemon, room.teacher) as web:
        token = web.headers.pop("X-CSRF-Token")
        refused = web.post("/api/v1/sessions/launch", json={"ids": [ana], "url": "https://example.org"})
        assert refused.status_code == 403
        web.headers["X-CSRF-Token"] = token
        answer = web.post("/api/v1/sessions/launch", json={"ids": [ana], "url": "https://example.org/a;b"})
        assert answer.status_code == 200 and answer.json()["succeeded"] == 1
        apps = web.get(f"/api/v1/sessions/{ana}/apps").json()
        assert [a["title"] for a in apps] == ["xdg-open https://example.org/a;b"]
        bad = web.post("/api/v1/sessions/launch", json={"ids": [ana], "url": "javascript:alert(1)"})
        assert bad.status_code == 400 and "url" in bad.json()["error"]["message"]
        installed = web.get("/api/v1/apps").json()
        xterm = next(a for a in installed if a["id"] == "debian-xterm.desktop")
        icon = web.get(xterm["icon"])
        assert icon.status_code == 200 and icon.content.startswith(b"\x89PNG")
    audit = [r for r in room.daemon.cli_json("audit") if r["action"] == "launch"]
    assert audit[-1]["detail"] == {"url": "https://example.org/a;b"} and audit[-1]["via"] == "web"
    assert json.dumps(audit[-1]["targets"]) == json.dumps([ana])
