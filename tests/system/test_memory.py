"""The daemon's memory: what glibc's allocator keeps free goes back to the system, its worker
threads share one arena, and the developer's tracemalloc switch writes snapshots to compare.

Each check runs in a fresh Python (a subprocess) so that its RSS is its own, not pytest's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.harness import REPOSITORY


def run_python(code: str, env: dict[str, str] | None = None) -> dict[str, int]:
    """Run ``code`` (which prints one JSON object last) in a new interpreter; that object."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(REPOSITORY), **(env or {})}, check=True)
    return dict(json.loads(done.stdout.splitlines()[-1]))


FRAGMENTS = """
import json
from polydesk.system import memory
# 200 MB of 2 kB strings, one in 50 kept: the freed ones are holes glibc keeps resident.
chunks = [b"%06d" % i * 333 for i in range(100_000)]
kept = chunks[::50]
del chunks
before = memory.rss_kib()
gave = memory.give_back()
print(json.dumps({"before": before, "after": memory.rss_kib(), "gave": gave}))
"""


def test_freed_memory_goes_back_to_the_system() -> None:
    found = run_python(FRAGMENTS)
    assert found["gave"]
    # ~196 MB were freed among the kept ones; at least half of that leaves the process
    assert found["after"] < found["before"] - 100_000, found


ARENAS = """
import json, threading
from pathlib import Path
from polydesk.system import memory
if {limit}:
    assert memory.limit_arenas()
barrier = threading.Barrier(6)
held = []
def work():
    barrier.wait()
    for _ in range(20):  # every thread at malloc at once: each would get its own arena
        held.append([bytes(3000) for _ in range(50)])
threads = [threading.Thread(target=work) for _ in range(6)]
for t in threads: t.start()
for t in threads: t.join()
# glibc's extra arenas are heaps aligned to 64 MiB (18 MB each fit in one); the main one is [heap]
maps = [line.split() for line in Path("/proc/self/maps").read_text().splitlines()]
arenas = [m for m in maps if len(m) == 5 and m[1] == "rw-p" and int(m[0].split("-")[0], 16) % (64 << 20) == 0]
print(json.dumps({{"arenas": len(arenas)}}))
"""


def test_worker_threads_share_one_arena() -> None:
    free_for_all = run_python(ARENAS.format(limit=False))
    limited = run_python(ARENAS.format(limit=True))
    assert free_for_all["arenas"] >= 2, free_for_all  # the check sees arenas when they are made
    assert limited["arenas"] <= 1, limited  # ARENAS = 2: the main one and one for the threads


SNAPSHOTS = """
import asyncio, json, os, signal
from pathlib import Path
from polydesk.system import memory

async def main():
    taker = memory.snapshots_from_environment()
    taker.start()
    grown = [bytes(1000) for _ in range(5000)]  # ~5 MB that a comparison must show
    os.kill(os.getpid(), signal.SIGUSR2)
    await asyncio.sleep(0.3)
    await taker.close()
    return len(grown)

asyncio.run(main())
print(json.dumps({"ok": 1}))
"""


def test_tracemalloc_snapshots_show_what_grew(tmp_path: Path) -> None:
    run_python(SNAPSHOTS, {"POLYDESK_TRACEMALLOC": str(tmp_path), "POLYDESK_TRACEMALLOC_S": "600"})
    taken = sorted(tmp_path.glob("*.snap"))
    assert len(taken) == 3, taken  # at start, on SIGUSR2, at close
    report = subprocess.run([sys.executable, "-m", "polydesk.system.memory", str(taken[0]), str(taken[1])],
                            capture_output=True, text=True, check=True, cwd=REPOSITORY).stdout
    first, where = report.splitlines()[1:3]  # the biggest growth: the 5000 strings, and who made them
    assert int(first.split()[0]) >= 4800 and 5000 <= int(first.split()[2]) < 5010, report
    assert where.strip() == "<string>:9", report  # the line that made them
