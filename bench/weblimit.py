"""The web limits' proxy: what it adds to a connection, and its CPU at 200 new connections a second.

    PYTHONPATH=. /opt/polydesk/venv/bin/python -m bench.weblimit [--rate 200] [--seconds 10]

Runs as root, on nothing but a private network namespace (tests/weblab.py): the lab's HTTP and
HTTPS servers, a bench user, and the daemon's proxy (system/webproxy.py, with the kernel's
rules of system/webrules.py) in a process of its own, so that its CPU is its alone. The
user's client measures, per connection, the time from connect to the whole answer, with no
limit (another user, straight to the server) and with an allow-only limit (through the
kernel's redirect and the proxy), in turns. Then it opens ``--rate`` connections a second for
``--seconds`` through the proxy, HTTP then HTTPS, and reads the proxy's CPU time over each
window from /proc (the client and the lab's Python servers may not keep up with the rate on a
small machine: the achieved rate is in the results, and the CPU is also given per connection).
Writes bench/results/weblimit.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from polydesk.system import webrules
from tests import weblab
from tests.harness import create_user, remove_with_processes
from tests.users import TestUser

RESULTS = Path(__file__).with_name("results") / "weblimit.json"

# The proxy as the daemon runs it, in a process of its own; prints its port, stops on stdin's end.
PROXY = """
import asyncio, sys
from polydesk.core.websites import web_limit
from polydesk.manager.weblimits import refused_page
from polydesk.system.webproxy import WebProxy

async def main() -> None:
    proxy = WebProxy(refused_page)
    print(await proxy.serve(int(sys.argv[1]), web_limit("allow", ["contoso.test"])), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await proxy.close()

asyncio.run(main())
"""

# The user's client: connections one after another (latency), or at a rate (load); JSON out.
CLIENT = """
import asyncio, json, ssl, sys, time
mode, count, rate, cafile = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
context = ssl.create_default_context(cafile=cafile)

async def one(tls: bool) -> float:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(
        "www.contoso.test", 443 if tls else 80, ssl=context if tls else None)
    writer.write(b"GET / HTTP/1.1\\r\\nHost: www.contoso.test\\r\\nConnection: close\\r\\n\\r\\n")
    body = await reader.read()
    writer.close()
    assert b"hello www.contoso.test" in body, body[:200]
    return time.perf_counter() - started

async def main() -> None:
    if mode == "latency":
        out = {"http": [await one(False) for _ in range(count)],
               "https": [await one(True) for _ in range(count)]}
    else:
        start, tasks = time.perf_counter(), []
        for n in range(count):
            await asyncio.sleep(max(0.0, start + n / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one(mode == "load-https")))
        times = await asyncio.gather(*tasks, return_exceptions=True)
        out = {"times": [t for t in times if isinstance(t, float)],
               "failed": sum(not isinstance(t, float) for t in times), "wall": time.perf_counter() - start}
    print(json.dumps(out))

asyncio.run(main())
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    pick = lambda q: round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)  # noqa: E731
    return {"p50_ms": pick(0.5), "p90_ms": pick(0.9), "p99_ms": pick(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=300, help="for the latency, one after another")
    args = parser.parse_args()
    if not webrules.nft_available():
        sys.exit("bench.weblimit: nftables is not installed (scripts/install)")
    with weblab.private_network(), weblab.web() as lab:
        user = create_user("bench")
        env = {**lab.env(None), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        free = create_user("bench")  # the same client with no limit, in turns with the limited one
        proxy = subprocess.Popen(lab.wrap([sys.executable, "-c", PROXY, str(user.uid)]),
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert proxy.stdout is not None
            port = int(proxy.stdout.readline())

            def client(*argv: str, who: TestUser = user) -> dict[str, object]:
                result = lab.run(["/usr/bin/python3", "-c", CLIENT, *argv, str(lab.cert)], who, timeout=300)
                assert result.returncode == 0, result.stderr
                answer: dict[str, object] = json.loads(result.stdout)
                return answer

            webrules.apply([webrules.UserRules(user.uid, port, True)], webrules.resolvers())
            # In turns, a tenth each time, so that what else the machine does weighs on both alike.
            direct: dict[str, list[float]] = {"http": [], "https": []}
            limited: dict[str, list[float]] = {"http": [], "https": []}
            for _ in range(10):
                for who, into in ((free, direct), (user, limited)):
                    for kind, times in client("latency", str(args.connections // 10), "0", who=who).items():
                        into[kind] += times  # type: ignore[operator]
            total = int(args.rate * args.seconds)
            load = {}
            for kind in ("http", "https"):
                before, started = cpu_seconds(proxy.pid), time.monotonic()
                answer = client(f"load-{kind}", str(total), str(args.rate))
                cpu, wall = cpu_seconds(proxy.pid) - before, time.monotonic() - started
                times = answer["times"]
                assert isinstance(times, list)
                load[kind] = {
                    "connections": total, "failed": answer["failed"],
                    "achieved_rate_per_s": round(total / float(answer["wall"]), 1),  # type: ignore[arg-type]
                    "connection": quantiles(times), "proxy_cpu_s": round(cpu, 3),
                    "proxy_cpu_ms_per_connection": round(1000 * cpu / total, 3),
                    "proxy_cpu_percent_of_one_core_at_rate": round(100 * cpu / total * args.rate, 1),
                    "wall_s": round(wall, 2)}
        finally:
            webrules.remove()
            assert proxy.stdin is not None
            proxy.stdin.close()
            proxy.wait(timeout=10)
            remove_with_processes(user)
            remove_with_processes(free)

    def added(kind: str) -> dict[str, float]:
        with_limit, without = quantiles(limited[kind]), quantiles(direct[kind])
        return {k: round(with_limit[k] - without[k], 3) for k in with_limit}

    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "kernel": platform.release()},
        "latency": {"connections": args.connections,
                    "direct": {k: quantiles(direct[k]) for k in ("http", "https")},
                    "limited": {k: quantiles(limited[k]) for k in ("http", "https")},
                    "added": {"http": added("http"), "https": added("https")}},
        "load": {"rate_per_s": args.rate, "seconds": args.seconds, **load},
    }
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
