"""Web limits in the kernel: Polydesk's own nftables table, and cutting connections already open.

The table is ``inet polydesk`` (IPv4 and IPv6 in one). It is written whole and replaced in one
``nft -f -`` transaction (``table ...; delete table ...; table ... { ... }``): the kernel has
the old rules or the new ones, never a mix and never none, and no other table is read or
touched. For each limited user (by uid, ``meta skuid``: what the user's every program sends):

- outgoing TCP to ports 80 and 443 is redirected to that user's own port of the daemon's
  filtering proxy (system/webproxy.py), which learns the user from the port it was reached on;
- QUIC (UDP 443) and DNS over TLS or QUIC (853) are refused at once (TCP reset, ICMP
  unreachable), so a browser falls back to TCP without waiting;
- TCP to 80 or 443 that was not redirected (a connection open before the limit started: NAT
  only sees a connection's first packet) is reset on its next packet;
- in allow-only mode everything else is refused too but DNS to the host's resolvers;
- nobody (another user, the student themself) can dial a proxy port directly: only what the
  redirect sent there reaches it, so another local user can neither use a student's list nor
  take up the connections the proxy allows that student.

Loopback (127.0.0.0/8, ::1) is left alone: it is this host's own services, not the web.
The table outlives the daemon on purpose: after a ``kill -9`` the limited users' web traffic
goes to a port nobody answers (refused), until the next daemon rebuilds the table.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from polydesk.core.model import BackendError

log = logging.getLogger(__name__)

TABLE = "polydesk"
WEB_PORTS = (80, 443)
_TIMEOUT = 10.0


@dataclass(frozen=True)
class UserRules:
    """One limited user, as the kernel needs to know them."""

    uid: int
    port: int  # their port of the proxy, on 127.0.0.1 and ::1
    allow_only: bool


def nft_available() -> bool:
    return shutil.which("nft") is not None


def resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> list[str]:
    """The host's DNS resolvers (``nameserver`` lines), the only DNS an allow-only user may ask."""
    found: list[str] = []
    try:
        text = resolv_conf.read_text()
    except OSError:
        return found
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0] == "nameserver":
            try:
                found.append(str(ipaddress.ip_address(parts[1].split("%")[0])))
            except ValueError:
                continue
    return found


def ruleset(users: Iterable[UserRules], dns: Iterable[str] = (), closed: bool = False) -> str:
    """The text of the whole table for ``users`` (pure; ``apply`` loads it). ``closed``: no proxy
    (the daemon stops): the users' web connections are reset, nothing is redirected."""
    users = sorted(users, key=lambda u: u.uid)
    v4 = sorted({a for a in dns if ipaddress.ip_address(a).version == 4})
    v6 = sorted({a for a in dns if ipaddress.ip_address(a).version == 6})
    limited = ", ".join(str(u.uid) for u in users)
    allow_only = ", ".join(str(u.uid) for u in users if u.allow_only)
    ports = "" if closed else ", ".join(f"{u.uid} : {u.port}" for u in users)
    proxy_ports = "" if closed else ", ".join(str(u.port) for u in users)
    lines = [f"table inet {TABLE} {{"]
    lines += [f"  set limited {{ type uid; {_elements(limited)} }}",
              f"  set allow_only {{ type uid; {_elements(allow_only)} }}",
              f"  map proxy_port {{ type uid : inet_service; {_elements(ports)} }}",
              f"  set proxy_ports {{ type inet_service; {_elements(proxy_ports)} }}",
              f"  set dns4 {{ type ipv4_addr; {_elements(', '.join(v4))} }}",
              f"  set dns6 {{ type ipv6_addr; {_elements(', '.join(v6))} }}"]
    # Every rule matches the limited users positively: a packet with no socket owner to read
    # (a SYN-ACK of a listening socket, a TIME_WAIT's ACK) matches neither ``@limited`` nor
    # ``!= @limited``, so a "return unless limited" would let it fall into the rejects.
    web = ", ".join(map(str, WEB_PORTS))
    if not closed:
        lines += [
            "  chain web_redirect {",
            "    type nat hook output priority -100; policy accept;",
            "    meta skuid @limited ip daddr != 127.0.0.0/8 tcp dport { " + web
            + " } redirect to meta skuid map @proxy_port",
            "    meta skuid @limited ip6 daddr != ::1 tcp dport { " + web
            + " } redirect to meta skuid map @proxy_port",
            "  }",
        ]
    lines += [
        "  chain web_refuse {",
        "    type filter hook output priority filter; policy accept;",
        # Whoever sends it: a packet to a proxy port that no redirect sent there is refused.
        "    ip daddr 127.0.0.0/8 tcp dport @proxy_ports ct status & dnat == 0 reject with tcp reset",
        "    ip6 daddr ::1 tcp dport @proxy_ports ct status & dnat == 0 reject with tcp reset",
        "    meta skuid @limited jump limited",
        "  }",
        "  chain limited {",
        # What the redirect sent to the proxy: its packets now go to loopback, which is open.
        "    ip daddr 127.0.0.0/8 accept",
        "    ip6 daddr ::1 accept",
        f"    tcp dport {{ {web}, 853 }} reject with tcp reset",
        "    udp dport { 443, 853 } reject",
        "    meta skuid @allow_only jump allow_only",
        "  }",
        "  chain allow_only {",
        "    udp dport 53 ip daddr @dns4 accept",
        "    tcp dport 53 ip daddr @dns4 accept",
        "    udp dport 53 ip6 daddr @dns6 accept",
        "    tcp dport 53 ip6 daddr @dns6 accept",
        "    meta l4proto tcp reject with tcp reset",
        "    reject with icmpx admin-prohibited",
        "  }",
        "}",
    ]
    return "\n".join(lines) + "\n"


def _elements(items: str) -> str:
    return f"elements = {{ {items} }};" if items else ""


def apply(users: Iterable[UserRules], dns: Iterable[str] = (), closed: bool = False) -> None:
    """Replace Polydesk's table with the rules for ``users`` in one transaction; no users: remove it."""
    users = list(users)
    script = f"table inet {TABLE}\ndelete table inet {TABLE}\n"  # creates it if missing, then empties
    if users:
        script += ruleset(users, dns, closed)
    _nft(["-f", "-"], script)


def remove() -> None:
    """Take Polydesk's table away (nothing else), if it is there."""
    _nft(["-f", "-"], f"table inet {TABLE}\ndelete table inet {TABLE}\n")


def listed() -> str:
    """Polydesk's table as the kernel has it ('' when there is none)."""
    result = subprocess.run(["nft", "list", "table", "inet", TABLE], capture_output=True, text=True,
                            timeout=_TIMEOUT, check=False)
    return result.stdout if result.returncode == 0 else ""


def _nft(args: list[str], script: str) -> None:
    try:
        result = subprocess.run(["nft", *args], input=script, capture_output=True, text=True,
                                timeout=_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BackendError(f"web limits: nft failed: {exc}") from None
    if result.returncode != 0:
        raise BackendError(f"web limits: nft refused the rules: {result.stderr.strip()[:500]}")


_SOCKET = re.compile(r"^\S+\s+\d+\s+\d+\s+(\S+):(\d+)\s+(\S+):(\d+)\s.*\buid:(\d+)\b")


def cut_connections(limits: Mapping[int, bool]) -> int:
    """End the TCP connections the users in ``limits`` opened before their limit: those to a web
    port (80, 443, 853) for everyone, every one but DNS and loopback for allow-only users (True).

    The socket is destroyed in the kernel (``ss -K``, SOCK_DESTROY): the program sees its
    connection aborted at once, even one that only waits for the server. The rules reset the
    same connections on their next packet anyway, should ``ss -K`` not be there. Returns how
    many were cut.
    """
    if not limits or shutil.which("ss") is None:
        return 0
    listing = subprocess.run(["ss", "-tnHe", "state", "established"], capture_output=True, text=True,
                             timeout=_TIMEOUT, check=False)
    cut = 0
    for line in listing.stdout.splitlines():
        match = _SOCKET.match("ESTAB " + line if not line.startswith("ESTAB") else line)
        if match is None:
            continue
        local, lport, peer, pport, uid = match.groups()
        allow_only = limits.get(int(uid))
        if allow_only is None or _loopback(peer):
            continue
        if int(pport) in (*WEB_PORTS, 853) or (allow_only and int(pport) != 53):
            result = subprocess.run(
                ["ss", "-K", "-tnH", "src", local.strip("[]"), "sport", "=", lport,
                 "dst", peer.strip("[]"), "dport", "=", pport],
                capture_output=True, text=True, timeout=_TIMEOUT, check=False)
            cut += result.returncode == 0 and bool(result.stdout.strip())
    if cut:
        log.info("web limits: cut %d connection(s) opened before the limit", cut)
    return cut


def _loopback(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip("[]").split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped.is_loopback
    return ip.is_loopback
