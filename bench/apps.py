"""Launching on many desktops (issue 16): the time from the launch request, which is what the
Dashboard's Launch button sends, to the window mapped on each of N sessions.

    PYTHONPATH=. /opt/polydesk/venv/bin/python -m bench.apps --sessions 30   # bench/results/apps.json

A real daemon and N real Xvnc sessions (bench/rig.py; their tops stopped: idle desktops).
Each repeat: the bench watches every session's root window (SubstructureNotify, as root with
the session's cookie), sends one ``POST /api/v1/sessions/launch {"all": true, "argv":
["xmessage", ...]}`` and notes, per session, when the first window is mapped there; then it
closes them all (``close-app`` by name). Figures: the median, 90th percentile and slowest of
those times over every session and repeat, and how long the request itself took to answer.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import select
import statistics
import time
from pathlib import Path
from typing import Any

from Xlib import X
from Xlib import display as xdisplay

from bench import results
from bench.rig import Rig, room

OUT = results.RESULTS / "apps.json"


def watch(rig: Rig, sessions: list[dict[str, Any]]) -> dict[str, xdisplay.Display]:
    """One connection per session, told of every window mapped on its screen."""
    watchers = {}
    for session in sessions:
        os.environ["XAUTHORITY"] = str(rig.xauthority(session["id"]))
        conn = xdisplay.Display(session["display"])
        conn.screen().root.change_attributes(event_mask=X.SubstructureNotifyMask)
        conn.sync()
        watchers[session["id"]] = conn
    os.environ.pop("XAUTHORITY", None)
    return watchers


def mapped_after(watchers: dict[str, xdisplay.Display], started: float, timeout: float) -> dict[str, float]:
    """Seconds from ``started`` to the first MapNotify on each session's screen."""
    seen: dict[str, float] = {}
    by_fd = {conn.fileno(): (sid, conn) for sid, conn in watchers.items()}
    deadline = started + timeout
    while len(seen) < len(watchers) and time.monotonic() < deadline:
        ready, _, _ = select.select(list(by_fd), [], [], max(0.0, deadline - time.monotonic()))
        now = time.monotonic()
        for fd in ready:
            sid, conn = by_fd[fd]
            while conn.pending_events():
                if conn.next_event().type == X.MapNotify and sid not in seen:
                    seen[sid] = now - started
    return seen


def launch(rig: Rig, round_: int, started: float) -> tuple[dict[str, Any], float]:
    """What the Dashboard's Launch sends for all sessions; its answer and how long it took."""
    with rig.api() as api:
        answer = api.post("/sessions/launch", json={
            "all": True, "argv": ["xmessage", "-title", f"bench {round_}", "Polydesk bench"]})
        took = time.monotonic() - started
        answer.raise_for_status()
        result: dict[str, Any] = answer.json()
        return result, took


def measure(sessions: int, repeat: int) -> dict[str, Any]:
    with room(sessions) as rig, rig.api() as api:
        for user in rig.users:
            api.post("/sessions", json={"user": user.name}).raise_for_status()
        rig.wait_desktops()
        rig.pause_tops(True)
        listed = api.get("/sessions").json()
        watchers = watch(rig, listed)
        times: list[float] = []
        answers: list[float] = []
        try:
            for round_ in range(repeat):
                time.sleep(1.0)
                for conn in watchers.values():  # what happened before the request does not count
                    while conn.pending_events():
                        conn.next_event()
                started = time.monotonic()
                # The request in a thread: the windows are watched while it is answered.
                with concurrent.futures.ThreadPoolExecutor(1) as pool:
                    sent = pool.submit(launch, rig, round_, started)
                    seen = mapped_after(watchers, started, timeout=60)
                    answer, took = sent.result()
                answers.append(took)
                assert answer["succeeded"] == sessions, answer
                if len(seen) < sessions:
                    raise RuntimeError(f"round {round_}: {sessions - len(seen)} windows never mapped")
                times.extend(seen.values())
                closed = api.post("/sessions/close-app", json={"all": True, "name": "xmessage"})
                closed.raise_for_status()
        finally:
            for conn in watchers.values():
                conn.close()
        ordered = sorted(times)
        return {
            "apps_sessions": sessions,
            "apps_repeats": repeat,
            "launch_to_mapped_median_s": round(statistics.median(ordered), 3),
            "launch_to_mapped_p90_s": round(ordered[int(0.9 * (len(ordered) - 1))], 3),
            "launch_to_mapped_max_s": round(ordered[-1], 3),
            "launch_request_median_s": round(statistics.median(answers), 3),
        }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.apps", description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    figures = measure(args.sessions, args.repeat)
    for name, value in figures.items():
        print(f"{name:32} {value}")
    results.write(Path(args.out), figures)


if __name__ == "__main__":
    main()
