"""The children a backend starts itself: reaped as they exit, parked (not dropped) at close."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from polydesk.system import children as children_module
from polydesk.system.children import Children
from tests.harness import await_for


def child(seconds: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({seconds})"])


async def test_a_watched_child_is_reaped_as_soon_as_it_exits() -> None:
    owned = Children()
    proc = child(0)
    owned.own(proc)
    owned.watch(proc.pid)
    await await_for(lambda: proc.returncode is not None, 10, "the child to be reaped")
    assert proc not in owned.owned()  # forgotten too, not only reaped
    owned.close()


async def test_children_running_at_close_are_parked_and_reaped_by_a_later_owner() -> None:
    first = Children()
    proc = child(0.5)
    first.own(proc)
    first.watch(proc.pid)
    first.close()  # the daemon stops: the child runs on
    assert proc.returncode is None and proc in children_module._LEFT_RUNNING
    later = Children()
    await await_for(lambda: (later.collect(), proc.returncode is not None)[1], 10, "the parked child to end")
    assert proc not in children_module._LEFT_RUNNING
    later.close()


async def test_reap_from_a_thread_leaves_no_zombie() -> None:
    owned = Children()
    proc = child(0)
    owned.own(proc)  # not watched: as a child reaped by end() in its thread
    await await_for(lambda: (owned.reap(), proc.returncode is not None)[1], 10, "the child to be reaped")
    await asyncio.to_thread(owned.reap)
    owned.collect()
    assert proc not in owned.owned()
