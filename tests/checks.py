"""Run-wide checks, as a pytest plugin (tests/conftest.py loads it):

- a skip not listed in tests/expected_skips.py fails the run;
- a process of this run still running once every fixture is torn down (a module- or
  session-scoped one's leftovers: the per-test check in tests/conftest.py sees the rest)
  fails the run, and is killed.
"""

from __future__ import annotations

import fnmatch
import re

import pytest

from tests import leaks
from tests.expected_skips import EXPECTED
from tests.harness import WORKER


def is_expected(nodeid: str, reason: str) -> bool:
    path, _, rest = nodeid.partition("::")
    test = f"{path.rsplit('/', 1)[-1]}::{rest}"
    return any(fnmatch.fnmatchcase(test, e.test) and re.match(e.reason, reason) for e in EXPECTED)


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


class RunChecks:
    def __init__(self) -> None:
        self.unexpected: list[str] = []
        self.left: list[leaks.Process] = []
        self.before: leaks.Snapshot = {}

    def pytest_sessionstart(self) -> None:
        self.before = leaks.processes()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not hasattr(report, "wasxfail"):
            reason = skip_reason(report)
            if not is_expected(report.nodeid, reason):
                self.unexpected.append(f"{report.nodeid}: {reason}")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self.left = leaks.left_behind(self.before)
        leaks.kill(self.left)
        if (self.unexpected or self.left) and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if self.unexpected:
            terminalreporter.section("unexpected skips (list them in tests/expected_skips.py if expected)",
                                     red=True)
            for line in self.unexpected:
                terminalreporter.write_line(line)
        if self.left:
            terminalreporter.section("processes left behind by the run (killed)", red=True)
            for process in self.left:
                terminalreporter.write_line(str(process))


def pytest_configure(config: pytest.Config) -> None:
    leaks.mark_run(fresh=WORKER is not None)
    config.pluginmanager.register(RunChecks(), "polydesk-run-checks")
