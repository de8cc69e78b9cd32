"""A private little internet for the web-limit tests: a network namespace that the test's
thread enters (and leaves), test names resolved from a hosts file that the daemon and the
users' programs see in their own mount namespace, and the web of tests/weblab_server.py.

Nothing here reaches outside this machine: the namespace has only its loopback, given three
documentation addresses (192.0.2.10, 192.0.2.20, 2001:db8::10) for the servers, and no route anywhere.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.harness import Daemon, scratch_dir, wait_for
from tests.users import TestUser

V4, V4_OTHER, V6 = "192.0.2.10", "192.0.2.20", "2001:db8::10"
NAMES = ("www.contoso.test", "contoso.test", "a.b.contoso.test")  # on V4
OTHER_NAMES = ("fabrikam.test", "wiki.fabrikam.test", "games.test", "mygames.test")  # on V4_OTHER
V6_NAMES = ("v6.contoso.test", "v6.fabrikam.test")
SERVER = Path(__file__).with_name("weblab_server.py")
# The lab's hosts file and resolv.conf in place of the machine's, then exec the rest of the command line.
_WITH_HOSTS = 'mount --bind "$0" /etc/hosts && mount --bind "$1" /etc/resolv.conf && shift && exec "$@"'
CLONE_NEWNET = 0x40000000  # os.unshare and os.setns come with Python 3.12; Debian 12 has 3.11
_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


@dataclass
class Lab:
    folder: Path
    hosts: Path
    cert: Path
    server: subprocess.Popen[str]

    def wrap(self, argv: Sequence[str], user: TestUser | None = None) -> list[str]:
        """``argv`` in a mount namespace that sees the lab's names (and as ``user``, if given)."""
        as_user = ["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--init-groups"] if user else []
        return ["unshare", "--mount", "--propagation", "private", "sh", "-c", _WITH_HOSTS,
                str(self.hosts), str(self.hosts.with_name("resolv.conf")), *as_user, *argv]

    def env(self, user: TestUser | None) -> dict[str, str]:
        """A plain environment: no proxy variables, Debian's programs first."""
        return {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "HOME": user.home if user else "/root",
                "LANG": "C.UTF-8"}

    def run(self, argv: Sequence[str], user: TestUser | None = None,
            timeout: float = 20) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.wrap(argv, user), capture_output=True, text=True, timeout=timeout,
                              env=self.env(user), cwd="/", check=False)

    def popen(self, argv: Sequence[str], user: TestUser | None = None) -> subprocess.Popen[str]:
        """``argv`` as ``user``, talking over its standard input and output."""
        return subprocess.Popen(self.wrap(argv, user), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                text=True, env=self.env(user), cwd="/")

    def curl(self, url: str, user: TestUser | None = None, *extra: str) -> subprocess.CompletedProcess[str]:
        """curl as ``user``: its exit code, and the body then the HTTP status on stdout."""
        return self.run(["curl", "-sS", "--max-time", "5", "--cacert", str(self.cert), "--noproxy", "*",
                         "-w", "\n%{http_code}", *extra, url], user)


def start_daemon(daemon: Daemon, lab: Lab) -> None:
    """``daemon.start`` in a mount namespace that resolves the lab's names (its proxy checks
    that a name leads to the address a connection goes to)."""
    with open(daemon.log, "ab") as log:
        daemon.proc = subprocess.Popen(lab.wrap([sys.executable, "-m", "polydesk", "serve"]),
                                       env=daemon.env(), stdout=log, stderr=subprocess.STDOUT)
    wait_for(daemon._accepts, timeout=20, what="the daemon's API socket")


@contextlib.contextmanager
def private_network() -> Iterator[None]:
    """The calling thread (and every process it starts) in a new network namespace, until exit."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        try:
            # The servers' addresses go on lo: a dummy interface needs a module this kernel may lack.
            for command in (["ip", "link", "set", "lo", "up"],
                            ["ip", "addr", "add", f"{V4}/32", "dev", "lo"],
                            ["ip", "addr", "add", f"{V4_OTHER}/32", "dev", "lo"],
                            ["ip", "addr", "add", f"{V6}/128", "dev", "lo"]):
                subprocess.run(command, check=True, capture_output=True)
            yield
        finally:
            _check(_libc.setns(home, CLONE_NEWNET), "setns back")
    finally:
        os.close(home)


@contextlib.contextmanager
def web() -> Iterator[Lab]:
    """The lab's names and servers, in the current (private) network namespace."""
    folder = scratch_dir("pdt-weblab-")
    hosts = folder / "hosts"
    hosts.write_text("127.0.0.1 localhost\n::1 localhost\n"
                     + "".join(f"{V4} {name}\n" for name in NAMES)
                     + "".join(f"{V4_OTHER} {name}\n" for name in OTHER_NAMES)
                     + "".join(f"{V6} {name}\n" for name in V6_NAMES))
    (folder / "resolv.conf").write_text(f"nameserver {V4}\n")  # the lab's "resolver": a UDP echo on 53
    (folder / "resolv.conf").chmod(0o644)
    cert, key = folder / "cert.pem", folder / "key.pem"
    names = ",".join(f"DNS:{n}" for n in (*NAMES, *OTHER_NAMES, *V6_NAMES))
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=contoso.test", "-addext", f"subjectAltName={names}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    for path in (hosts, cert):
        path.chmod(0o644)
    server = subprocess.Popen([sys.executable, str(SERVER), str(cert), str(key)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert server.stdout is not None and server.stdout.readline().strip() == "ready"
    try:
        yield Lab(folder, hosts, cert, server)
    finally:
        assert server.stdin is not None and server.stdout is not None
        server.stdin.close()
        server.kill()
        server.wait()
        server.stdout.close()
