"""The Dashboard's Launch dialog and applications panel, end to end: headless Chromium, a real
daemon, real Xvnc sessions. A teacher launches a program on two selected sessions, sees it in
both thumbnails (and not in the third), lists one session's applications and closes it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from playwright.sync_api import Browser, expect

from polydesk.system import processes as procs
from tests.harness import Daemon, wait_for
from tests.users import TestUser
from tests.web.test_dashboard_e2e import dominant, pixels
from tests.web.webclient import logon, new_page, sign_in

RED = 0


def test_launch_from_the_dashboard_on_two_selected_sessions(
    make_user: Callable[..., TestUser], daemon: Daemon, browser: Browser
) -> None:
    teacher = make_user("teach", "dashboard")
    ana, bia, caio = (make_user(name) for name in ("ana", "bia", "caio"))
    ids = {user.name: logon(daemon, user) for user in (ana, bia, caio)}
    page = new_page(browser)
    sign_in(page, daemon, teacher)
    expect(page.locator("#grid .card")).to_have_count(3)
    for session_id in ids.values():
        wait_for(lambda sid=session_id: (p := pixels(page, sid)) and p["std"] > 8,
                 what="a real desktop", timeout=30)

    page.locator(f"#card-{ids[ana.name]}").click()
    page.locator(f"#card-{ids[bia.name]}").click(modifiers=["Control"])
    page.locator(f"#card-{ids[bia.name]}").click(button="right")  # the thumbnails' menu
    page.click("#context-menu [data-apps=launch]")
    dialog = page.locator("#launch-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#launch-cancel")).to_be_focused()  # never the button that acts
    expect(page.locator("#launch-selected-label")).to_contain_text("2")
    expect(page.locator("#launch-picker li", has_text="XTerm").first).to_be_visible()  # installed, with icons
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(page.locator("#grid .card:focus")).to_have_count(1)  # back to the thumbnails

    page.locator(f"#card-{ids[bia.name]}").click(button="right")
    page.click("#context-menu [data-apps=launch]")
    # (a shell in it would put its prompt in the title: a command of its own keeps the title)
    page.fill("#launch-input", 'xterm -T "pdt launched" -bg "#c81e1e" -geometry 400x120+0+0 -e sleep 600')
    page.click("#launch-ok")
    rows = page.locator("#results-body tr")
    expect(rows).to_have_count(2)
    expect(rows.filter(has_text="Launched")).to_have_count(2)

    # Both chosen thumbnails turn red (the big red terminal), the third does not.
    for name in (ana.name, bia.name):
        wait_for(lambda sid=ids[name]: (p := pixels(page, sid)) and dominant(p["mean"], RED),
                 what=f"{name}'s thumbnail to show the launched window", timeout=30)
    third = pixels(page, ids[caio.name])
    assert third is not None and not dominant(third["mean"], RED)
    assert not [a for a in daemon.cli_json("apps", ids[caio.name]) if a["title"] == "pdt launched"]

    # The applications panel of one session: the window, its pid; Close ends it.
    pid = int(re.findall(r"pid (\d+)", rows.filter(has_text=ana.name).inner_text())[0])
    page.locator(f"#card-{ids[ana.name]}").click()
    page.locator(f"#card-{ids[ana.name]}").click(button="right")  # the thumbnail's menu
    page.click("#apps-button")
    row = page.locator("#apps-body tr", has_text="pdt launched")
    expect(row).to_have_count(1)
    expect(row).to_contain_text(str(pid))
    expect(row).to_contain_text("XTerm")
    row.locator("button.close-app").click()
    expect(page.locator("#apps-body tr", has_text="pdt launched")).to_have_count(0)
    wait_for(lambda: not procs.is_running(pid), what="the closed terminal to exit", timeout=10)
    audit = [r for r in daemon.cli_json("audit") if r["action"] in ("launch", "close-app")]
    assert [r["action"] for r in audit] == ["launch", "close-app"]
    assert audit[0]["detail"]["argv"] == ["xterm", "-T", "pdt launched", "-bg", "#c81e1e", "-geometry",
                                          "400x120+0+0", "-e", "sleep", "600"]
    assert json.dumps(audit[1]["targets"]) == json.dumps([ids[ana.name]])
    assert page.errors == []  # type: ignore[attr-defined]
