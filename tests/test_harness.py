"""The harness's own checks, each shown failing on purpose: a wait that times out raises and
says what it waited for; a process left behind is caught even once re-parented away from
the test run; an asyncio task left pending is caught; a skip nobody expected fails the run."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import psutil
import pytest

from tests import leaks
from tests.harness import WaitTimeout, await_for, scratch_dir, wait_for

# ---------------------------------------------------------------- waiting


def test_wait_for_gives_the_value_and_raises_saying_what_it_waited_for() -> None:
    assert wait_for(lambda: [1], timeout=0.1) == [1]
    with pytest.raises(WaitTimeout, match=r"after 0.2 s waiting for the door; now: shut"):
        wait_for(lambda: False, 0.2, "the door", show=lambda: "shut")
    with pytest.raises(WaitTimeout, match=r"waiting for lambda: 1 \+ 1 == 3"):
        wait_for(lambda: 1 + 1 == 3, 0.1)


async def test_await_for_does_not_block_the_loop() -> None:
    ready = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, ready.set)
    assert await await_for(ready.is_set, timeout=2)
    with pytest.raises(WaitTimeout, match="the bell"):
        await await_for(lambda: False, 0.1, "the bell")


# ---------------------------------------------------------------- processes


@pytest.fixture(autouse=True)
def inner_ini(pytester: pytest.Pytester) -> None:
    """The settings of the suite, for the runs of pytest inside these tests."""
    pytester.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")


def orphan(argv: list[str], **options: object) -> psutil.Process:
    """Start ``argv`` through a shell that exits at once: the process is re-parented (to PID 1
    or a subreaper), no longer a descendant of the test run."""
    shell = subprocess.run(["/bin/sh", "-c", '"$@" >/dev/null 2>&1 & echo $!', "sh", *argv],
                           capture_output=True, text=True, check=True, **options)  # type: ignore[call-overload]
    process = psutil.Process(int(shell.stdout))
    assert process.pid not in {p.pid for p in psutil.Process().children(recursive=True)}
    return process


@pytest.fixture
def killed() -> Iterator[list[psutil.Process]]:
    """Processes a test leaked on purpose, killed whatever the test's outcome."""
    made: list[psutil.Process] = []
    yield made
    for process in made:
        if process.is_running():
            process.send_signal(signal.SIGKILL)


def gone(pid: int) -> bool:
    """Killed: no such process, or a zombie (dead, only not reaped yet)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def caught(before: leaks.Snapshot, process: psutil.Process) -> bool:
    return process.pid in {p.pid for p in leaks.left_behind(before, settle=0.3)}


def test_a_reparented_process_with_the_run_mark_is_caught(killed: list[psutil.Process]) -> None:
    assert leaks.MARK_VAR in os.environ  # tests/checks.py marks the run
    before = leaks.processes()
    killed.append(orphan(["/bin/sleep", "60"]))
    assert caught(before, killed[-1])


def test_a_reparented_process_of_a_test_account_is_caught(killed: list[psutil.Process]) -> None:
    uid = 4_000_000 + os.getpid() % 1000  # nobody's: no account, no other run's processes
    leaks.claim_uid(uid)
    before = leaks.processes()
    killed.append(orphan(["/bin/sleep", "60"], env={}, user=uid, group=uid))  # no mark in its environment
    assert caught(before, killed[-1])


def test_a_reparented_process_naming_a_directory_of_the_run_is_caught(killed: list[psutil.Process]) -> None:
    directory = scratch_dir("pdt-leak-")
    try:
        before = leaks.processes()
        killed.append(orphan([sys.executable, "-c", "import time; time.sleep(60)", str(directory)], env={}))
        assert caught(before, killed[-1])
    finally:
        directory.rmdir()


def test_someone_elses_process_is_not_ours(killed: list[psutil.Process]) -> None:
    before = leaks.processes()
    killed.append(orphan(["/bin/sleep", "60"], env={}))  # no mark, root, names nothing of ours
    assert not caught(before, killed[-1])


def test_the_fixture_fails_a_test_that_leaks_and_kills_what_it_left(pytester: pytest.Pytester) -> None:
    pidfile = pytester.path / "pid"
    pytester.makeconftest("from tests.conftest import no_process_left_behind  # noqa: F401")
    pytester.makepyfile(f"""
        import pathlib
        import subprocess

        def test_leaks():
            shell = subprocess.run(["/bin/sh", "-c", "/bin/sleep 60 >/dev/null 2>&1 & echo $!"],
                                   capture_output=True, text=True, check=True)
            pathlib.Path({str(pidfile)!r}).write_text(shell.stdout)
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, errors=1)
    pid = int(pidfile.read_text())
    result.stdout.fnmatch_lines([f"*left processes behind: pid {pid} uid 0: /bin/sleep 60*"])
    wait_for(lambda: gone(pid), timeout=5, what=f"the leaked sleep {pid} to be killed")


# ---------------------------------------------------------------- asyncio tasks


async def forever() -> None:
    await asyncio.Event().wait()


def test_a_pending_task_is_caught_and_a_cancelled_one_settles() -> None:
    loop = asyncio.new_event_loop()
    try:
        left = loop.create_task(forever(), name="left")
        told = loop.create_task(forever(), name="told")
        loop.run_until_complete(asyncio.sleep(0))
        told.cancel()  # told to end, never awaited: it ends once the loop runs again
        assert leaks.tasks_left(loop, set(), settle=0.2) == [left]
        assert leaks.describe(left).startswith("left (forever) at ")
        left.cancel()
        assert leaks.tasks_left(loop, set(), settle=0.2) == []
    finally:
        loop.close()


def test_the_fixture_fails_an_async_test_that_leaves_a_task(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.conftest import no_task_left_behind  # noqa: F401")
    pytester.makepyfile("""
        import asyncio
        import pytest

        @pytest.fixture
        async def server():
            task = asyncio.create_task(asyncio.Event().wait(), name="served")
            yield
            task.cancel()  # a fixture that ends its task in time: not a leak

        async def test_tidy(server):
            await asyncio.sleep(0)

        async def test_leaves_a_task(server):
            asyncio.create_task(asyncio.sleep(3600), name="forgotten")
    """)
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*test_leaves_a_task left asyncio tasks pending: forgotten (sleep) at *"])
    result.stdout.no_fnmatch_line("*served*")


# ---------------------------------------------------------------- skips


SKIPPING = """
    import pytest

    def test_kernel():
        pytest.skip("no cgroup v1 pids hierarchy here")

    def test_install():
        pytest.skip("the tool is not installed")
"""


def skipping_tests(pytester: pytest.Pytester, source: str) -> None:
    """``source`` as a test_processes.py in a package of its own: the suite's own
    test_processes module may already be imported under that bare name."""
    pytester.mkpydir("checked")
    pytester.makepyfile(**{"checked/test_processes": source})


def test_a_skip_nobody_expected_fails_the_run(pytester: pytest.Pytester) -> None:
    skipping_tests(pytester, SKIPPING)
    result = pytester.runpytest_inprocess("-p", "tests.checks", "-p", "no:cacheprovider", "-rs")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*unexpected skips*",
                                 "*test_processes.py::test_install: the tool is not installed"])
    result.stdout.no_fnmatch_line("*test_processes.py::test_kernel: *")


def test_expected_skips_pass(pytester: pytest.Pytester) -> None:
    skipping_tests(pytester, SKIPPING.split("def test_install")[0])
    result = pytester.runpytest_inprocess("-p", "tests.checks", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(skipped=1)


def test_a_process_left_by_a_wider_fixture_fails_the_run(pytester: pytest.Pytester) -> None:
    """A module-scoped fixture's process is not the test's (no test fails for it); left behind
    after the fixture's teardown, it fails the run."""
    pidfile = pytester.path / "pid"
    pytester.makeconftest("from tests.conftest import no_process_left_behind  # noqa: F401")
    pytester.makepyfile(f"""
        import os
        import pathlib
        import pytest

        @pytest.fixture(scope="module")
        def server():
            pid = os.spawnv(os.P_NOWAIT, "/bin/sleep", ["/bin/sleep", "60"])
            yield
            pathlib.Path({str(pidfile)!r}).write_text(str(pid))  # and forgets to stop it

        def test_one(server):
            pass

        def test_two(server):
            pass
    """)
    result = pytester.runpytest_inprocess("-p", "tests.checks", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    pid = int(pidfile.read_text())
    result.stdout.fnmatch_lines(["*processes left behind by the run (killed)*",
                                 f"pid {pid} uid 0: /bin/sleep 60"])
    ended = os.waitid(os.P_PID, pid, os.WEXITED)  # our child (the inner run is in this process): reaped here
    assert ended is not None and ended.si_status == signal.SIGKILL
