"""`polydesk config check`: each bad key or value named, with its line; exit 0 good, 2 bad."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from polydesk.config.check import VALUE_RULES, Problem, check_text, find_line
from polydesk.config.settings import settings_table

BAD = """\
# Polydesk at the school
listen = "0.0.0.0"          # no port
logof_grace = 10

logoff_grace = "ten"
depth = 16
hosts = ["xvnc", "nope"]
kill_after = -1
block_message = "Olhem para a lousa"
language = "fr"
"""


def test_each_bad_key_or_value_is_named_with_its_line() -> None:
    problems = check_text(BAD)
    assert [(p.line, p.key) for p in problems] == [
        (2, "listen"), (3, "logof_grace"), (5, "logoff_grace"), (6, "depth"), (7, "hosts"), (8, "kill_after"),
        (10, "language")]
    by_key = {p.key: p.message for p in problems}
    assert "did you mean 'logoff_grace'" in by_key["logof_grace"]
    assert by_key["logoff_grace"] == "must be int, not 'ten'"  # the daemon's own words
    assert "24 or 32" in by_key["depth"] and "'nope'" in by_key["hosts"]
    assert by_key["kill_after"] == "must be 0 or more, not -1"


def test_a_syntax_error_names_its_line_and_column() -> None:
    [problem] = check_text('listen = "127.0.0.1:8765"\nlogoff_grace = \n')
    assert (problem.line, problem.key) == (2, None)
    assert problem.message.startswith("TOML syntax: Invalid value") and "column" in problem.message
    [twice] = check_text("depth = 24\n\ndepth = 32\n")
    assert twice.line == 3


def test_every_default_passes() -> None:
    """A file setting every key to its default is good: the extra rules accept the defaults."""
    text = "".join(f"{name} = {json.dumps(default)}\n" for name, default, _ in settings_table()
                   if default is not None)  # None: a table absent by default ([fleet])
    assert check_text(text) == []
    assert check_text("") == []


def test_extra_rules_are_about_real_settings() -> None:
    assert set(VALUE_RULES) <= {name for name, _, _ in settings_table()}


def test_lines_are_found_in_tables_dotted_and_inline() -> None:
    text = ('listen = "x"\n[fleet]\n# host = "old"\n"host" = 1\n[other]\nhost = 2\n'
            "[third]\nfleet.host = 3\n")
    assert find_line(text, "host", ("fleet",)) == 4
    assert find_line(text, "host", ("other",)) == 6
    assert find_line(text, "fleet", ()) == 2  # the table itself
    assert find_line(text, "nothing", ()) is None
    assert find_line("fleet.host = 1\n", "host", ("fleet",)) == 1
    assert find_line("a = 1\nfleet = { host = 1 }\n", "host", ("fleet",)) == 2
    assert find_line("[fleet]\nhost = 1\n", "fleet") == 1


def test_problem_format() -> None:
    problem = Problem(3, "depth", "must be 24 or 32")
    assert problem.format("/etc/p.toml") == "/etc/p.toml:3: depth: must be 24 or 32"
    assert Problem(None, None, "odd").format("f") == "f: odd"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POLYDESK_CONFIG"}
    return subprocess.run([sys.executable, "-m", "polydesk", "config", "check", *args],
                          capture_output=True, text=True, env=env)


def test_the_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(BAD)
    result = _check(str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines()[0] == (
        f"{bad}:2: listen: must be host:port, e.g. 127.0.0.1:8765 (or empty: API socket only), "
        "not '0.0.0.0'")
    assert len(result.stderr.splitlines()) == 7

    good = tmp_path / "good.toml"
    good.write_text('listen = "127.0.0.1:8765"\nlogoff_grace = 60\n')
    result = _check(str(good))
    assert (result.returncode, result.stdout) == (0, f"{good}: ok\n")

    result = _check(str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and "cannot read" in result.stderr
