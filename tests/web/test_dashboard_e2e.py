"""The Dashboard end to end: real headless Chromium, a real daemon, real Xvnc sessions, real passwords.

The issue's "done when": an administrator sees live thumbnails of the real desktops,
selects two and logs them off while the third stays; a Dashboard user logs off all
users; a standard user sees only their own session and is refused anything else.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.harness import Daemon, wait_for
from tests.users import TestUser, user_pids
from tests.web.webclient import logon, new_page, sign_in

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "dashboard.png"

# The picture a card shows, as the browser drew it: mean colour and contrast of its pixels.
PIXELS_JS = """(id) => {
  const canvas = document.querySelector(`#card-${id} canvas.thumb`);
  if (!canvas || !canvas.dataset.version) return null;
  const d = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const n = d.length / 4, mean = [0, 0, 0];
  let sum = 0, sum2 = 0;
  for (let i = 0; i < d.length; i += 4) {
    mean[0] += d[i]; mean[1] += d[i + 1]; mean[2] += d[i + 2];
    const y = 0.3 * d[i] + 0.59 * d[i + 1] + 0.11 * d[i + 2];
    sum += y; sum2 += y * y;
  }
  return {mean: mean.map((v) => v / n), std: Math.sqrt(Math.max(0, sum2 / n - (sum / n) ** 2)),
          version: canvas.dataset.version, width: canvas.width};
}"""



def pixels(page: Page, session_id: str) -> dict[str, Any] | None:
    result: dict[str, Any] | None = page.evaluate(PIXELS_JS, session_id)
    return result


def set_background(daemon: Daemon, session_id: str, color: str) -> None:
    """Change a session's desktop from outside, as root with the session's own X cookie."""
    session = next(s for s in daemon.sessions() if s["id"] == session_id)
    xauthority = daemon.runtime_dir / "sessions" / session_id / "Xauthority"
    env = {"PATH": os.environ["PATH"], "DISPLAY": session["display"], "XAUTHORITY": str(xauthority)}
    subprocess.run(["xsetroot", "-solid", color], env=env, check=True, timeout=10)


def dominant(rgb: list[float], channel: int) -> bool:
    return rgb[channel] > 100 and all(rgb[channel] > v + 60 for i, v in enumerate(rgb) if i != channel)


def test_administrator_logs_off_two_selected_users_and_the_third_stays(
    make_user: Callable[..., TestUser], daemon: Daemon, browser: Browser
) -> None:
    admin = make_user("adm", "admin")
    ana, bia, caio = (make_user(name) for name in ("ana", "bia", "caio"))
    ids = {user.name: logon(daemon, user) for user in (ana, bia, caio)}
    page = new_page(browser)
    sign_in(page, daemon, admin)
    cards = page.locator("#grid .card")
    expect(cards).to_have_count(3)
    expect(cards.locator(".user")).to_have_text(sorted(ids))  # sorted by user

    # three live thumbnails showing the real desktops (openbox and an xterm: not one flat colour)
    for session_id in ids.values():
        wait_for(lambda sid=session_id: (p := pixels(page, sid)) and p["std"] > 8,
                 what="a real desktop", timeout=30)
    # ... that follow the desktops: paint each background, see each card change on its own
    colors = {ana.name: ("#c81e1e", 0), bia.name: ("#14a03c", 1), caio.name: ("#1e50dc", 2)}
    before = {sid: pixels(page, sid)["version"] for sid in ids.values()}  # type: ignore[index]
    for name, (color, _) in colors.items():
        set_background(daemon, ids[name], color)
    for name, (_, channel) in colors.items():
        sid = ids[name]
        wait_for(lambda sid=sid, channel=channel: (p := pixels(page, sid)) and dominant(p["mean"], channel),
                 what=f"{name}'s thumbnail to show the new background", timeout=30)
        after = pixels(page, sid)
        assert after is not None and after["version"] != before[sid] and after["std"] > 8

    # select two: click one, Ctrl-click another
    page.locator(f"#card-{ids[ana.name]}").click()
    page.locator(f"#card-{ids[caio.name]}").click(modifiers=["Control"])
    page.locator(f"#card-{ids[bia.name]}").click(modifiers=["Control"])
    page.locator(f"#card-{ids[caio.name]}").click(modifiers=["Control"])  # and out again
    expect(page.locator("#selected-count")).to_have_text("2 selected")
    expect(page.locator(".card.selected .user")).to_have_text([ana.name, bia.name])

    # top-left menu: Log off users -> Log off selected users; the confirmation names them and warns
    page.click("#logoff-button")
    expect(page.locator("#logoff-dropdown")).to_be_visible()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))  # the README's picture
    page.click("#logoff-dropdown [data-action=logoff-selected]")
    dialog = page.locator("#confirm")
    expect(dialog).to_be_visible()
    expect(page.locator("#confirm-title")).to_have_text("Log off selected users")
    expect(page.locator("#confirm-users li")).to_have_text([
        f"{ana.name} (session {ids[ana.name]})", f"{bia.name} (session {ids[bia.name]})"])
    expect(page.locator("#confirm-warning")).to_contain_text("Unsaved work")
    expect(page.locator("#grace")).to_have_value("30")
    page.fill("#grace", "0")
    page.click("#confirm-ok")
    expect(dialog).to_be_hidden()

    # they disappear, live; the third stays; the results say what happened to each
    for name in (ana.name, bia.name):
        expect(page.locator(f"#card-{ids[name]}")).to_have_count(0, timeout=60_000)
    expect(page.locator(f"#card-{ids[caio.name]}")).to_be_visible()
    expect(page.locator("#results-body tr")).to_have_count(2)
    expect(page.locator("#results-body")).to_contain_text("Logged off")
    expect(page.locator("#selected-count")).to_have_text("0 selected")
    assert [s["user"] for s in daemon.sessions()] == [caio.name]
    assert user_pids(ana.uid) == [] and user_pids(bia.uid) == [] and user_pids(caio.uid) != []

    # the right-click menu on a selected thumbnail: Block, with MultiPoint's default message
    caio_card = page.locator(f"#card-{ids[caio.name]}")
    caio_card.click(button="right")
    expect(page.locator("#context-menu")).to_be_visible()
    expect(page.locator("#selected-count")).to_have_text("1 selected")
    page.click("#context-menu [data-action=block]")
    # left empty, the default is shown in each session's own language: the placeholder shows it
    expect(page.locator("#message")).to_have_value("")
    expect(page.locator("#message")).to_have_attribute("placeholder", "Station blocked")
    page.click("#confirm-ok")
    expect(caio_card.locator(".blocked-badge")).to_be_visible()
    expect(caio_card).to_have_class(re.compile(r"\bis-blocked\b"))
    assert daemon.sessions()[0]["blocked"] is True
    page.click("#toolbar [data-action=unblock]")
    page.click("#confirm-ok")
    expect(caio_card.locator(".blocked-badge")).to_be_hidden()
    assert page.errors == []  # type: ignore[attr-defined]


def test_dashboard_user_logs_off_all_users(
    make_user: Callable[..., TestUser], daemon: Daemon, browser: Browser
) -> None:
    teacher, admin = make_user("tch", "dashboard"), make_user("adm", "admin")
    students = [make_user(name) for name in ("ana", "bia", "caio")]
    boss = logon(daemon, admin)
    for student in students:
        logon(daemon, student)
    page = new_page(browser)
    sign_in(page, daemon, teacher)
    # MultiPoint's default: administrator sessions are not shown on the Dashboard
    expect(page.locator("#grid .card")).to_have_count(3)
    expect(page.locator(f"#card-{boss}")).to_have_count(0)
    page.click("#logoff-button")
    page.click("#logoff-dropdown [data-action=logoff-all]")
    expect(page.locator("#confirm-title")).to_have_text("Log off all users")
    expect(page.locator("#confirm-users li")).to_have_count(3)
    for student in students:
        expect(page.locator("#confirm-users")).to_contain_text(student.name)
    page.fill("#grace", "0")
    page.click("#confirm-ok")
    expect(page.locator("#grid .card")).to_have_count(0, timeout=60_000)
    expect(page.locator("#empty")).to_be_visible()
    expect(page.locator("#results-body tr.ok")).to_have_count(3)
    assert [s["id"] for s in daemon.sessions()] == [boss]
    assert all(user_pids(student.uid) == [] for student in students)
    assert page.errors == []  # type: ignore[attr-defined]


def test_standard_user_sees_only_their_own_session(
    make_user: Callable[..., TestUser], daemon: Daemon, browser: Browser
) -> None:
    ana, bia = make_user("ana"), make_user("bia")
    a, b = logon(daemon, ana), logon(daemon, bia)
    page = new_page(browser)
    sign_in(page, daemon, ana)
    expect(page.locator("#privacy-notice")).to_be_visible()  # on the station page they land on
    expect(page.locator("#station")).to_have_attribute("data-state", "connected", timeout=30_000)
    page.goto(daemon.url + "/session")  # the overview of their own session
    expect(page.locator("#privacy-notice")).to_be_visible()
    expect(page.locator("#grid .card")).to_have_count(1)
    expect(page.locator(f"#card-{a}")).to_be_visible()
    assert bia.name not in page.content()
    wait_for(lambda: (p := pixels(page, a)) and p["std"] > 8, what="their own desktop", timeout=30)

    # the API, with this browser's own cookie and CSRF token: 403 for anything about bia's session
    csrf = page.locator('meta[name="csrf-token"]').get_attribute("content") or ""
    assert page.request.get(f"{daemon.url}/api/v1/sessions/{b}/thumbnail").status == 403
    assert page.request.get(f"{daemon.url}/api/v1/sessions/{b}").status == 403
    refused = page.request.post(f"{daemon.url}/api/v1/sessions/logoff", headers={"X-CSRF-Token": csrf},
                                data={"ids": [b], "force": True})
    assert refused.status == 403
    assert refused.json()["results"][0]["status"] == "not-permitted"
    assert {s["id"] for s in daemon.sessions()} == {a, b}

    # their own: disconnect (it keeps running), then log off
    page.click("#own-disconnect")
    expect(page.locator("#own-result")).to_contain_text("Disconnected")
    expect(page.locator(f"#card-{a} .state")).to_have_text("Disconnected")
    page.once("dialog", lambda d: d.accept())
    page.click("#own-logoff")
    expect(page.locator(f"#card-{a}")).to_have_count(0, timeout=60_000)
    expect(page.locator("#empty")).to_be_visible()
    assert [s["id"] for s in daemon.sessions()] == [b]
    assert user_pids(ana.uid) == []
    assert page.errors == []  # type: ignore[attr-defined]
