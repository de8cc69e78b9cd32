"""One host cannot forge another's caller: requests signed with a wrong key, by a host nobody
trusts, or replayed are refused and audited; a genuine one is carried out once."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats

from polydesk.fleet.wire import FROM, NONCE, Signer, new_seed, seal, unseal, verify_key
from tests.fleet.hosts import Host, make_seeds
from tests.fleet.test_fleet_commands import logon
from tests.harness import Nats, start_nats
from tests.users import TestUser, user_pids


async def ask(url: str, subject: str, body: dict[str, Any], headers: dict[str, str]) -> dict[str, str]:
    client = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0)
    try:
        reply = await client.request(subject, json.dumps(body).encode(), timeout=5, headers=headers)
        return dict(reply.headers or {})
    finally:
        await client.close()


def test_forged_and_replayed_requests_are_refused_and_audited(
    nats_server: Nats, make_fleet: Callable[..., list[Host]], make_user: Callable[..., TestUser]
) -> None:
    a, b = make_fleet(nats_server)
    bia = make_user("bia")
    session = logon(b.daemon, bia)
    subject = "polydesk.cmd.B.logoff"
    body = {"caller": {"user": "root"}, "ids": [session], "options": {"force": True}}
    data = json.dumps(body).encode()
    url = nats_server.urls[0]

    def refusal(headers: dict[str, str]) -> str:
        answer = json.loads(headers["Pd-Meta"])
        assert answer["error"]["code"] == "not-permitted", answer
        return str(answer["error"]["message"])

    # Someone with NATS access but not A's key, claiming to be A, asking as root.
    impostor = Signer(new_seed())
    said = refusal(asyncio.run(ask(url, subject, body, seal(impostor, "A", subject, data))))
    assert "the signature is not that of host A" in said
    # A host nobody trusts, with a key of its own.
    said = refusal(asyncio.run(ask(url, subject, body, seal(impostor, "evil", subject, data))))
    assert "host 'evil' is not trusted" in said
    # A's genuine request for another action, altered on the way: the signature no longer holds.
    genuine = seal(Signer(a.seed.read_bytes()), "A", "polydesk.cmd.B.message", data)
    said = refusal(asyncio.run(ask(url, subject, body, genuine)))
    assert "the signature is not that of host A" in said
    assert user_pids(bia.uid) != [] and [s["id"] for s in b.daemon.sessions()] == [session]

    # A's genuine request is carried out, and its answer is signed by B; once, not twice.
    message = {"caller": {"user": "root"}, "ids": [session], "options": {"text": "Hello"}}
    message_data = json.dumps(message).encode()
    headers = seal(Signer(a.seed.read_bytes()), "A", "polydesk.cmd.B.message", message_data)
    answer = asyncio.run(ask(url, "polydesk.cmd.B.message", message, headers))
    assert answer[FROM] == "B" and answer[NONCE] == headers[NONCE]
    assert json.loads(answer["Pd-Meta"])["results"][0]["status"] == "shown"
    said = refusal(asyncio.run(ask(url, "polydesk.cmd.B.message", message, headers)))
    assert "already received (a replay)" in said

    refused = [r for r in b.audit() if not r["allowed"] and r["via"].startswith("fleet:")]
    assert [(r["via"], r["action"], r["caller"]) for r in refused] == [
        ("fleet:A", "logoff", "root"), ("fleet:evil", "logoff", "root"), ("fleet:A", "logoff", "root"),
        ("fleet:A", "message", "root")]
    assert all(r["detail"]["reason"].startswith("fleet request refused:") for r in refused)
    shown = [r for r in b.audit() if r["action"] == "message" and r["allowed"]]
    assert [(r["via"], r["caller"]) for r in shown] == [("fleet:A", "root")]


def test_signatures_bind_sender_subject_and_body() -> None:
    signer = Signer(new_seed())
    trusted = {"A": verify_key(signer.public_key)}
    headers = seal(signer, "A", "polydesk.cmd.B.logoff", b"{}", meta={"x": 1})
    assert unseal(trusted, "polydesk.cmd.B.logoff", headers, b"{}").meta == {"x": 1}
    for subject, body, changed in (("polydesk.cmd.C.logoff", b"{}", {}), ("polydesk.cmd.B.logoff", b"[]", {}),
                                   ("polydesk.cmd.B.logoff", b"{}", {"Pd-Meta": '{"x":2}'}),
                                   ("polydesk.cmd.B.logoff", b"{}", {"Pd-Time": "1"})):
        try:
            unseal(trusted, subject, {**headers, **changed}, body)
        except Exception as exc:
            assert type(exc).__name__ == "Forged"
        else:
            raise AssertionError(f"accepted {subject} {body!r} {changed}")


def make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate of 127.0.0.1 signed by it: (ca, certificate, key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=pdt CA")
    openssl("req", *ec, "-keyout", "nats.key", "-out", "nats.csr", "-subj", "/CN=127.0.0.1")
    (directory / "san").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl("x509", "-req", "-in", "nats.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "nats.pem", "-days", "2", "-extfile", "san")
    return directory / "ca.pem", directory / "nats.pem", directory / "nats.key"


def test_hosts_reach_nats_over_tls_with_their_own_nkey(
    make_fleet: Callable[..., list[Host]], tmp_path: Path
) -> None:
    """The deployment of docs/fleet.md: TLS, and NATS lets in only the hosts' keys (nkey users)."""
    seeds = make_seeds(tmp_path, ("A", "B"))
    ca, certificate, key = make_certificates(tmp_path)
    users = ", ".join(f'{{nkey: "{Signer(p.read_bytes()).public_key}"}}' for p in seeds.values())
    nats_server = start_nats(1, conf=f'tls {{ cert_file: "{certificate}", key_file: "{key}" }}\n'
                                     f"authorization {{ users: [ {users} ] }}\n")
    try:
        a, b = make_fleet(nats_server, seeds=seeds, backends='["fake"]', nkey_auth=True, tls_ca=str(ca))
        assert a.hosts()["B"]["online"] and b.hosts()["A"]["online"]
        url = f"http://127.0.0.1:{nats_server.nodes[0].monitor}/connz"
        with urllib.request.urlopen(url, timeout=5) as answer:
            connections = json.load(answer)["connections"]
        assert sorted((c["name"], c["tls_version"] != "") for c in connections) == [
            ("polydesk A", True), ("polydesk B", True)]

        # Anyone else is refused (the protocol by hand: a refused nats-py client leaks a socket).
        context = ssl.create_default_context(cafile=str(ca))
        with socket.create_connection(("127.0.0.1", nats_server.nodes[0].port), timeout=5) as raw:
            raw.recv(4096)  # INFO, in clear, then TLS
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as anonymous:
                anonymous.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
                assert b"Authorization Violation" in anonymous.recv(4096)
        for host in (a, b):  # stopped before the server, so they do not retry against nothing
            host.daemon.stop()
    finally:
        nats_server.stop()
