"""Logon and log-off times of real Xvnc sessions through a real daemon.

    python -m bench.session_times [--sessions 20] [--repeat 3]

Starts a daemon on temporary directories, makes ``pdt-bench-*`` users, and
measures through the REST API on the Unix socket:

- logon_median_s: one logon request until it answers (the host answers once
  the X display accepts clients), median over every logon;
- logoff_all_force_s: ``logoff --all --force`` of N sessions, wall time,
  median over the repeats.

Prints a table and merges the figures into bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import make_daemon_dirs, shutdown
from tests.users import create_user, remove_user

RESULTS = Path(__file__).parent / "results" / "latest.json"


def api(daemon_socket: Path) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(uds=str(daemon_socket)),
                        base_url="http://polydesk/api/v1", timeout=300)


def run(sessions: int, repeat: int) -> dict[str, Any]:
    daemon = make_daemon_dirs()
    daemon.start()
    users = [create_user(f"bench{i}") for i in range(sessions)]
    logons: list[float] = []
    logoffs: list[float] = []
    try:
        with api(daemon.socket) as client:
            for _ in range(repeat):
                for user in users:
                    started = time.perf_counter()
                    response = client.post("/sessions", json={"user": user.name})
                    logons.append(time.perf_counter() - started)
                    response.raise_for_status()
                started = time.perf_counter()
                answer = client.post("/sessions/logoff", json={"all": True, "force": True}).json()
                logoffs.append(time.perf_counter() - started)
                assert answer["failed"] == 0, answer
                assert client.get("/sessions").json() == []
    finally:
        shutdown(daemon)
        for user in users:
            remove_user(user)
    return {
        "sessions": sessions,
        "logon_median_s": round(statistics.median(logons), 3),
        "logon_p90_s": round(statistics.quantiles(logons, n=10)[-1], 3),
        "logoff_all_force_s": round(statistics.median(logoffs), 3),
        "logoff_all_force_runs_s": [round(x, 3) for x in logoffs],
        "logons_measured": len(logons),
    }


def merge_results(figures: dict[str, Any]) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    current.update(figures)
    RESULTS.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    figures = run(args.sessions, args.repeat)
    for key, value in figures.items():
        print(f"{key:24} {value}")
    merge_results(figures)


if __name__ == "__main__":
    main()
