"""python -m bench [--sessions N] [--repeat R] [--workload top|full|both] [--out FILE]: the benchmark
suite (see bench/suite.py).

Run as root from the repository, after ``bash scripts/install --test``:

    PYTHONPATH=. /opt/polydesk/venv/bin/python -m bench --sessions 50

Prints a table and writes the figures to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from bench.results import LATEST
from bench.suite import WORKLOADS, Windows, run, table, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=50, help="sessions (and users) to run")
    parser.add_argument("--repeat", type=int, default=3, help="repeats; figures are their medians")
    parser.add_argument("--out", type=Path, default=LATEST, help="where the JSON goes")
    parser.add_argument("--quick", action="store_true", help="short windows (a smoke run)")
    parser.add_argument("--workload", choices=(*WORKLOADS, "both"), default="both",
                        help="top: an xterm running top on each screen; full: the whole screen changes "
                             "every 0.5 s; both (default): one after the other, every key")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("python -m bench: run as root (it creates users and sessions)", file=sys.stderr)
        return 2
    if not 1 <= args.sessions <= 500 or not 1 <= args.repeat <= 20:
        parser.error("--sessions 1..500, --repeat 1..20")
    windows = Windows(settle=2, idle=5, busy=5, full=5, api=3, probes=10) if args.quick else Windows()
    # SIGTERM as Ctrl-C: the rig's cleanup (log-offs, users) runs on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    workloads = WORKLOADS if args.workload == "both" else (args.workload,)
    result = run(args.sessions, args.repeat, windows, say=lambda line: print(line, flush=True),
                 workloads=workloads)
    print(table(result))
    write(result, args.out)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
