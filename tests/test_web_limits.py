"""Web limits, end to end: a daemon, a limited student, another user and the host, with curl,
a Python client and Chromium run as those users, in a private network namespace with its own
little web (tests/weblab.py). The kernel holds the limit: nothing the student runs gets around it.

One lab for the module (a daemon on the fake backend: the limit is the user's, by uid, and the
programs are the student's own processes, which a desktop session adds nothing to).
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from tests import weblab
from tests.harness import Daemon, create_user, make_daemon_dirs, remove_with_processes, shutdown, wait_for
from tests.users import TestUser

pytestmark = pytest.mark.skipif(subprocess.run(["which", "nft"], capture_output=True).returncode != 0,
                                reason="nftables is not installed (scripts/install)")


@dataclass
class World:
    lab: weblab.Lab
    daemon: Daemon
    student: TestUser
    other: TestUser
    teacher: TestUser
    session: str  # the student's session id
    other_session: str

    def ok(self, url: str, user: TestUser | None = None, *extra: str) -> str:
        result = self.lab.curl(url, user, *extra)
        assert result.returncode == 0, f"{url} as {user and user.name}: {result.stderr}"
        body, _, status = result.stdout.rpartition("\n")
        assert status == "200", f"{url}: {result.stdout}"
        return body.strip()

    def refused(self, url: str, user: TestUser | None = None,
                *extra: str) -> subprocess.CompletedProcess[str]:
        started = time.monotonic()
        result = self.lab.curl(url, user, *extra)
        took = time.monotonic() - started
        assert result.returncode != 0 or not result.stdout.endswith("\n200"), f"{url} loaded: {result.stdout}"
        assert took < 2.5, f"{url} took {took:.1f} s to fail: a refusal must be quick"
        return result


def _table() -> str:
    return subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    with weblab.private_network(), weblab.web() as lab:
        users = [create_user("web"), create_user("other"), create_user("teach", ("pdt-dashboard",))]
        daemon = make_daemon_dirs(backends='["fake"]')
        try:
            weblab.start_daemon(daemon, lab)
            ids = [daemon.cli_json("logon", user.name)["session"]["id"] for user in users[:2]]
            yield World(lab, daemon, *users, *ids)
        finally:
            shutdown(daemon)
            for user in users:
                remove_with_processes(user)


def test_without_a_limit_everything_loads_and_polydesk_has_no_table(world: World) -> None:
    assert "polydesk" not in _table()
    assert world.ok("https://fabrikam.test/", world.student) == "hello fabrikam.test"
    assert world.ok("http://v6.fabrikam.test:8080/", world.student) == "hello v6.fabrikam.test:8080"


def test_allow_only(world: World) -> None:
    student, w = world.student, world
    limited = w.daemon.cli("web", "allow", w.session, "contoso.test", "wiki", user=w.teacher)
    assert limited.returncode == 0, limited.stdout + limited.stderr
    assert "table inet polydesk" in _table()
    # Allowed: the domain, its subdomains, a keyword's label; HTTPS, HTTP, IPv4 and IPv6.
    assert w.ok("https://www.contoso.test/", student) == "hello www.contoso.test"
    assert w.ok("http://a.b.contoso.test/", student) == "hello a.b.contoso.test"
    assert w.ok("https://wiki.fabrikam.test/", student) == "hello wiki.fabrikam.test"
    assert w.ok("https://v6.contoso.test/", student) == "hello v6.contoso.test"
    # Refused, fast: another site (HTTP gets the page, HTTPS a reset), IPv6 too.
    page = w.refused("http://fabrikam.test/", student)
    assert "Blocked by your teacher: fabrikam.test" in page.stdout and page.stdout.endswith("\n403")
    w.refused("https://fabrikam.test/", student)
    w.refused("https://v6.fabrikam.test/", student)
    # Nothing gets around it: an address, --resolve, a forged Host, other ports, DoT, QUIC.
    w.refused(f"https://{weblab.V4}/", student, "-k")
    w.refused(f"http://[{weblab.V6}]/", student)
    w.refused("https://www.contoso.test/", student, "--resolve", f"www.contoso.test:443:{weblab.V6}")
    w.refused("https://www.contoso.test/", student, "--resolve", f"www.contoso.test:443:{weblab.V4_OTHER}")
    forged = w.refused("http://fabrikam.test/", student, "-H", "Host: www.contoso.test")
    assert "Blocked by your teacher: www.contoso.test" in forged.stdout
    w.refused("http://www.contoso.test:8080/", student)
    w.refused("telnet://fabrikam.test:853", student)
    quic = w.lab.run(["python3", "-c", _udp(weblab.V4, 443)], student)
    assert quic.stdout.strip() == "refused", quic.stdout + quic.stderr
    # DNS: to the host's resolver (resolv.conf: V4), and nowhere else.
    assert w.lab.run(["python3", "-c", _udp(weblab.V4, 53)], student).stdout.strip() == "echo"
    assert w.lab.run(["python3", "-c", _udp(weblab.V4_OTHER, 53)], student).stdout.strip() == "refused"
    # Everyone else is untouched: another user, root.
    assert w.ok("https://fabrikam.test/", w.other) == "hello fabrikam.test"
    assert w.ok("http://fabrikam.test:8080/", None) == "hello fabrikam.test:8080"
    assert w.lab.run(["python3", "-c", _udp(weblab.V4, 443)], w.other).stdout.strip() == "echo"
    # Everyone sees it: the session list, the CLI.
    shown = w.daemon.cli("web", "show", w.session)
    assert "allow only\tcontoso.test wiki" in shown.stdout
    listed = {s["id"]: s for s in w.daemon.sessions()}
    assert listed[w.session]["web_limit"] == {"mode": "allow", "sites": ["contoso.test", "wiki"]}
    assert listed[w.other_session]["web_limit"] is None


def _udp(address: str, port: int) -> str:
    """A UDP client's script: "echo", "refused" (the ICMP answer, or EPERM at once) or "timeout"."""
    return f"""
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
s.connect(({address!r}, {port}))
try: s.send(b"quic"); print("echo" if s.recv(10) == b"quic" else "?")
except (ConnectionRefusedError, PermissionError): print("refused")
except TimeoutError: print("timeout")
"""


def test_another_user_cannot_dial_the_students_proxy_port(world: World) -> None:
    """The attack: another local user finds the student's port of the proxy (``ss -ltn`` shows
    it) and connects to it themself, 600 times and holding on, to use up the connections the
    proxy allows the student. The kernel refuses every one (only what the redirect sent there
    gets through), and the student's web goes on."""
    w = world
    assert w.daemon.cli("web", "allow", w.session, "contoso.test").returncode == 0
    try:
        port = int(re.search(rf"{w.student.uid} : (\d+)", _table()).group(1))  # type: ignore[union-attr]
        for who in (w.other, w.student):
            dialled = w.lab.run(["python3", "-c", _DIAL.format(port=port)], who)
            assert dialled.stdout.split() == ["refused"] * 2, (who.name, dialled.stdout + dialled.stderr)
        flood = w.lab.popen(["python3", "-c", _FLOOD.format(port=port)], w.other)
        try:
            assert w.ok("https://www.contoso.test/", w.student) == "hello www.contoso.test"
        finally:
            flood.kill()
            flood.communicate()
    finally:
        w.daemon.cli("web", "off", "--all")


_DIAL = """
import socket
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    s = socket.socket(family); s.settimeout(2)
    try: s.connect((host, {port})); print("connected")
    except ConnectionRefusedError: print("refused")
    except OSError as exc: print(type(exc).__name__)
"""

_FLOOD = """
import socket
held = []
for _ in range(600):
    s = socket.socket(); s.settimeout(1)
    try: s.connect(("127.0.0.1", {port})); held.append(s)
    except OSError: s.close()
import time; time.sleep(30)
"""


def test_a_connection_opened_before_the_limit_is_cut(world: World) -> None:
    w = world
    w.daemon.cli("web", "off", w.session)
    client = w.lab.popen(["python3", "-c", _KEEP_ALIVE], w.student)
    assert client.stdin is not None and client.stdout is not None
    try:
        assert client.stdout.readline().strip() == "200 hello fabrikam.test"
        assert w.daemon.cli("web", "allow", w.session, "contoso.test").returncode == 0
        client.stdin.write("again\n")
        client.stdin.flush()
        assert client.stdout.readline().strip().startswith("cut"), "the open connection went on"
    finally:
        client.kill()
        client.communicate()


_KEEP_ALIVE = """
import http.client, sys
c = http.client.HTTPConnection("fabrikam.test", 80, timeout=5)
c.request("GET", "/"); r = c.getresponse(); print(r.status, r.read().decode().strip(), flush=True)
sys.stdin.readline()
try:
    c.request("GET", "/"); r = c.getresponse(); print(r.status, r.read().decode().strip(), flush=True)
except OSError as exc:
    print("cut", type(exc).__name__, flush=True)
"""


def test_a_limit_outlives_a_killed_daemon_and_ends_without_a_trace(
        world: World, daemon_factory: Callable[..., Daemon], make_user: Callable[..., TestUser]) -> None:
    # A daemon of its own, with a real Xvnc session (it outlives the daemon, as the limit must),
    # in the same lab: the module's daemon has no limit meanwhile, so the one table is this one's.
    w, student = world, make_user("webx")
    daemon = daemon_factory(start=False)
    weblab.start_daemon(daemon, w.lab)
    session = daemon.cli_json("logon", student.name)["session"]["id"]
    assert daemon.cli("web", "allow", session, "contoso.test").returncode == 0
    daemon.kill()
    # While no daemon runs, the student's web is refused, not open; the others' is open.
    w.refused("https://www.contoso.test/", student)
    w.refused("https://fabrikam.test/", student)
    assert w.ok("https://fabrikam.test/", w.other) == "hello fabrikam.test"
    weblab.start_daemon(daemon, w.lab)
    assert [s["web_limit"] for s in daemon.sessions()] == [{"mode": "allow", "sites": ["contoso.test"]}]
    assert w.ok("https://www.contoso.test/", student) == "hello www.contoso.test"
    w.refused("https://fabrikam.test/", student)
    # A daemon that stops cleanly leaves the web refused too: nothing redirected, all reset.
    assert daemon.stop() == 0
    table = _table()
    assert f"elements = {{ {student.uid} }}" in table and "redirect" not in table
    w.refused("https://www.contoso.test/", student)
    weblab.start_daemon(daemon, w.lab)
    assert w.ok("https://www.contoso.test/", student) == "hello www.contoso.test"
    assert daemon.cli("web", "off", "--all").returncode == 0
    assert "polydesk" not in _table()
    assert w.ok("https://fabrikam.test/", student) == "hello fabrikam.test"


def test_block_only_with_keywords(world: World) -> None:
    w, student = world, world.student
    assert w.daemon.cli("web", "block", w.session, "games", "fabrikam.test").returncode == 0
    w.refused("https://games.test/", student)
    w.refused("https://wiki.fabrikam.test/", student)
    assert w.ok("https://mygames.test/", student) == "hello mygames.test"
    assert w.ok("https://www.contoso.test/", student) == "hello www.contoso.test"
    assert w.ok("http://fabrikam.test:8080/", student) == "hello fabrikam.test:8080"  # not the web
    w.refused("https://www.contoso.test/", student, "--resolve", f"www.contoso.test:443:{weblab.V4_OTHER}")
    w.refused("telnet://fabrikam.test:853", student)  # DoT: the names would go unseen
    w.daemon.cli("web", "off", "--all")


def test_roles_and_bad_input(world: World) -> None:
    w = world
    refused = w.daemon.cli("web", "allow", w.other_session, "contoso.test", user=w.student)
    assert refused.returncode == 3, refused.stdout + refused.stderr
    own = w.daemon.cli("web", "allow", w.session, "contoso.test", user=w.student)
    assert own.returncode == 3 and "own session" in own.stdout + own.stderr
    bad = w.daemon.cli("web", "allow", w.session, "10.0.0.1")
    assert bad.returncode == 2 and "'10.0.0.1' is an IP address" in bad.stderr
    unknown = w.daemon.cli("web", "off", "999")
    assert unknown.returncode == 2 and "999" in unknown.stdout + unknown.stderr
    saved = w.daemon.cli("web", "save", "Exam", "allow", "contoso.test", "wiki", user=w.teacher)
    assert saved.returncode == 0, saved.stderr
    assert w.daemon.cli("web", "allow", w.session, "--list", "Exam", user=w.teacher).returncode == 0
    assert w.daemon.cli_json("web", "show", w.session) == {"mode": "allow", "sites": ["contoso.test", "wiki"]}
    with w.daemon.client("/api/v1") as api:
        audit = api.get("/audit", params={"limit": 20}).json()
    actions = [(a["action"], a["caller"], a["allowed"]) for a in audit]
    assert ("web-limit", w.student.name, False) in actions
    assert ("web-lists", w.teacher.name, True) in actions
    assert w.daemon.cli("web", "off", "--all").returncode == 0


def test_chromium_as_the_student(world: World) -> None:
    w = world
    assert w.daemon.cli("web", "allow", w.session, "contoso.test").returncode == 0
    try:
        chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--ignore-certificate-errors", f"--user-data-dir={w.student.home}/chromium",
                    "--virtual-time-budget=3000", "--dump-dom"]
        allowed = w.lab.run([*chromium, "https://www.contoso.test/"], w.student, timeout=40)
        assert "hello www.contoso.test" in allowed.stdout, allowed.stderr[-2000:]
        blocked = w.lab.run([*chromium, "http://fabrikam.test/"], w.student, timeout=40)
        assert "Blocked by your teacher: fabrikam.test" in blocked.stdout, blocked.stderr[-2000:]
    finally:
        w.daemon.cli("web", "off", "--all")


def test_ending_the_session_ends_the_limit(world: World) -> None:
    w = world
    assert w.daemon.cli("web", "allow", w.other_session, "contoso.test").returncode == 0
    w.refused("https://fabrikam.test/", w.other)
    assert w.daemon.cli("logoff", w.other_session, "--force", "--yes").returncode == 0
    wait_for(lambda: "polydesk" not in _table(), timeout=10, what="the rules going with the session")
    assert w.ok("https://fabrikam.test/", w.other) == "hello fabrikam.test"

