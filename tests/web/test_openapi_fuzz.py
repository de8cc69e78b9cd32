"""Schemathesis, generated from /api/v1/openapi.json, against a live daemon.

The daemon runs the in-memory host so thousands of requests take seconds; the
routes, validation, policy and store are the real ones. Every check is on:
no server error, every status and body as documented, every documented
request accepted, the stateful links followed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.harness import Daemon
from tests.users import TestUser


def test_the_api_keeps_its_openapi_promises(
    daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]
) -> None:
    daemon = daemon_factory(extra_config="logoff_grace = 0", backends='["fake"]')
    for stem in ("ana", "bia"):
        assert daemon.cli("logon", make_user(stem).name).returncode == 0
    token = daemon.cli("token", "create").stdout.strip().split()[-1]
    result = subprocess.run(
        [str(Path(sys.executable).parent / "st"), "run", f"{daemon.url}/api/v1/openapi.json",
         "-H", f"Authorization: Bearer {token}", "--checks", "all", "--max-examples", "40",
         "--workers", "2", "--seed", "20261124", "--request-timeout", "30",
         "--max-response-time", "15"],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-8000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert generated and int(generated.group(1)) > 500, result.stdout[-2000:]
    print(f"schemathesis: {generated.group(0)}")
