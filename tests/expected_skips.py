"""The skips the suite expects, each with why. Any other skip fails the run (tests/checks.py):
a missing install is a failure, never a skip; what a machine's kernel lacks may be a skip.

``test`` is matched (fnmatch) against a test's node id without its folders (``file.py::name[params]``),
so an entry holds wherever the file moves; ``reason`` (a regular expression) against the start of
the reason the test gave.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Expected:
    test: str
    reason: str
    why: str


EXPECTED = [
    Expected("test_processes.py::*", r"no cgroup v1 \w+ hierarchy here",
             "a process tracking mode is shown where the kernel mounts that cgroup v1 hierarchy"),
    Expected("test_processes.py::*", r"no cgroup2 filesystem mounted|.* has no cgroup\.kill",
             "cgroup2 tracking needs a cgroup2 mount with cgroup.kill (Linux 5.14)"),
    Expected("test_service.py::*", r"no cgroup hierarchy systemd can use",
             "the systemd unit test boots systemd in a namespace, which needs a cgroup tree it can use"),
]
