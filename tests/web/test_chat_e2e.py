"""Chat in Chromium on both sides, on a real Xvnc session: the teacher writes from the Dashboard,
the student's station opens its panel with the words as typed (markup stays text), the answer
comes back to the Dashboard, a raised hand marks the thumbnail and the page's title; the
conversation outlives a daemon killed with -9."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable

from playwright.sync_api import Browser, expect

from tests.harness import Daemon, wait_for
from tests.users import TestUser
from tests.web.test_station_e2e import connected
from tests.web.webclient import logon, new_page, sign_in


def pgrep_chat(user: TestUser) -> bool:
    """``polydesk chat`` runs as ``user``."""
    found = subprocess.run(["pgrep", "-u", str(user.uid), "-f", "polydesk --socket .* chat"],
                           capture_output=True, text=True)
    return bool(found.stdout.strip())


MARKUP = "Hello <b>Ana</b> <img src=x onerror=alert(1)>"


def test_teacher_and_student_chat_and_the_hand_marks_the_thumbnail(
    daemon: Daemon, make_user: Callable[..., TestUser], browser: Browser
) -> None:
    teacher, ana = make_user("tch", "dashboard"), make_user("ana")
    a = logon(daemon, ana)

    student = new_page(browser)
    sign_in(student, daemon, ana)
    connected(student)
    dashboard = new_page(browser)
    sign_in(dashboard, daemon, teacher)

    expect(dashboard.locator(f"#card-{a} .hand-badge")).to_be_attached()  # chat.js is there
    # The teacher opens a chat from the thumbnail's right-click menu and writes (markup included).
    dashboard.locator(f"#card-{a}").click(button="right")
    dashboard.click("#context-menu [data-chat]")
    panel = dashboard.locator(f"#chat-dock .chat-panel[data-session='{a}']")
    expect(panel).to_be_visible()
    expect(panel.locator(".chat-title")).to_contain_text(ana.name)
    panel.locator("textarea").fill(MARKUP)
    panel.locator("textarea").press("Enter")

    # The student's panel opens by itself, showing the characters typed, not markup.
    chat = student.locator("#chat-panel")
    expect(chat).to_be_visible(timeout=10_000)
    expect(chat.locator(".chat-log .theirs .chat-text")).to_have_text(MARKUP)
    assert chat.locator(".chat-log b, .chat-log img").count() == 0

    # The answer comes back to the Dashboard's panel; a predefined reply goes out in one click.
    student.fill("#chat-text", "I am stuck on exercise 3")
    student.press("#chat-text", "Enter")
    expect(panel.locator(".chat-log .theirs .chat-text")).to_have_text("I am stuck on exercise 3")
    panel.locator("[data-reply]").first.click()
    expect(chat.locator(".chat-log .theirs .chat-text").last).to_have_text("I am coming.")

    # Raise hand: the thumbnail is marked, the title counts it; the teacher lowers it.
    student.click("#station-hand")
    expect(student.locator("#station-hand")).to_have_attribute("aria-pressed", "true")
    card = dashboard.locator(f"#card-{a}")
    expect(card.locator(".hand-badge")).to_be_visible(timeout=10_000)
    expect(card).to_have_class(re.compile(r"\bhas-hand\b"))
    expect(dashboard).to_have_title(re.compile(r"^\(1 ✋\)"))
    panel.locator(".chat-lower").click()
    expect(card.locator(".hand-badge")).to_be_hidden(timeout=10_000)
    expect(student.locator("#station-hand")).to_have_attribute("aria-pressed", "false")
    assert student.errors == [] and dashboard.errors == []  # type: ignore[attr-defined]
    student.close()
    dashboard.close()

    # Without a station page (closed here; a logind seat, a native VNC client) the daemon opens
    # a chat window in the session: a terminal running `polydesk chat` as its user, who answers
    # there (through the API socket, as themselves).
    wait_for(lambda: next(s for s in daemon.sessions() if s["id"] == a)["state"] == "disconnected",
             what="the session disconnected with its page")
    with daemon.client("/api/v1") as root:
        assert root.post(f"/sessions/{a}/chat", json={"text": "Are you still there?"}).status_code == 200
        display = next(s for s in daemon.sessions() if s["id"] == a)["display"]
        x = {**os.environ, "DISPLAY": str(display),
             "XAUTHORITY": str(daemon.runtime_dir / "sessions" / a / "Xauthority")}
        window = wait_for(lambda: subprocess.run(
            ["xdotool", "search", "--name", "Chat with the teacher"], env=x, capture_output=True,
            text=True).stdout.split(), what="the chat window in the session")
        # What is typed there (the keyboard, XTEST) reaches the conversation as the student's.
        subprocess.run(["xdotool", "windowactivate", "--sync", window[0]], env=x, check=True, timeout=10)
        wait_for(lambda: pgrep_chat(ana), what="polydesk chat running as the student")
        for line in ("/hand", "Yes, I am here"):  # /hand: the window's Raise hand
            subprocess.run(["xdotool", "type", "--delay", "30", line], env=x, check=True, timeout=20)
            subprocess.run(["xdotool", "key", "Return"], env=x, check=True, timeout=10)

        def answered() -> bool:
            messages = root.get(f"/sessions/{a}/chat").json()["messages"]
            return any(m["text"] == "Yes, I am here" and m["from"] == "student" for m in messages)
        wait_for(answered, what="the answer typed in the session's chat window")
        assert root.get(f"/sessions/{a}").json()["hand_raised_at"] is not None

    # kill -9: the conversation is in SQLite, the session re-adopted with it.
    daemon.kill()
    daemon.start()
    with daemon.client("/api/v1") as root:
        texts = [m["text"] for m in root.get(f"/sessions/{a}/chat").json()["messages"]]
    assert texts == [MARKUP, "I am stuck on exercise 3", "I am coming.", "Are you still there?",
                     "Yes, I am here"]
