"""The site a connection names, from its first bytes (core/sniff.py): real ClientHellos and
HTTP heads, cut anywhere, and hostile bytes, which are refused as Malformed and nothing else."""

from __future__ import annotations

import ssl
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polydesk.core.sniff import MAX_HELLO, MORE, Malformed, Sniffed, sniff


def client_hello(name: str | None) -> bytes:
    """The ClientHello Python's own TLS client sends for ``name`` (OpenSSL's, as curl's)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname=name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def handmade_hello(extensions: bytes, record_size: int | None = None) -> bytes:
    body = b"\x03\x03" + b"r" * 32 + b"\x00" + b"\x00\x02\x13\x01" + b"\x01\x00"
    body += struct.pack("!H", len(extensions)) + extensions
    handshake = b"\x01" + len(body).to_bytes(3, "big") + body
    size = record_size or len(handshake)
    records = b""
    for at in range(0, len(handshake), size):
        chunk = handshake[at:at + size]
        records += b"\x16\x03\x01" + struct.pack("!H", len(chunk)) + chunk
    return records


def sni(name: bytes) -> bytes:
    entry = b"\x00" + struct.pack("!H", len(name)) + name
    listing = struct.pack("!H", len(entry)) + entry
    return b"\x00\x00" + struct.pack("!H", len(listing)) + listing


def test_a_real_client_hello_names_its_site_and_every_prefix_asks_for_more() -> None:
    hello = client_hello("www.contoso.test")
    assert sniff(hello) == Sniffed("tls", "www.contoso.test")
    for cut in range(len(hello)):
        assert sniff(hello[:cut]) is MORE
    assert sniff(hello + b"\x17\x03\x03\x00\x01x") == Sniffed("tls", "www.contoso.test")
    assert sniff(client_hello(None)) == Sniffed("tls", None)


def test_a_client_hello_over_several_records_and_an_ech_one() -> None:
    assert sniff(handmade_hello(sni(b"a.test"), record_size=7)) == Sniffed("tls", "a.test")
    ech = b"\xfe\x0d\x00\x02ab"
    assert sniff(handmade_hello(sni(b"public.test") + ech)) == Sniffed("tls", "public.test", ech=True)


@pytest.mark.parametrize("bad", [
    handmade_hello(sni(b"a.test") + sni(b"b.test")),  # two SNI extensions
    handmade_hello(sni(b"a b")),  # not a host name
    handmade_hello(b"\x00\x00\x00\x05\x00\x03\x00\x00\x09"),  # a name's length past its end
    b"\x16\x03\x01\x00\x05\x02\x00\x00\x01\x00",  # a ServerHello, not a ClientHello
    b"\x16\x03\x01\x00\x00",  # an empty record
    b"\x16\x09\x01\x00\x05abcde",  # not TLS 1.x
    b"\x16\x03\x01\x40\x00" + b"\x01\xff\xff\xff",  # announces 16 MiB
    b"SSH-2.0-OpenSSH_9.2\r\n",
    b"\x00\x01\x02",
])
def test_hostile_or_foreign_bytes_are_malformed(bad: bytes) -> None:
    with pytest.raises(Malformed):
        sniff(bad)


def test_http_heads() -> None:
    head = b"GET /x HTTP/1.1\r\nUser-Agent: curl\r\nHost: www.contoso.test:8080\r\n\r\n"
    assert sniff(head) == Sniffed("http", "www.contoso.test:8080")
    for cut in range(len(head) - 1):
        assert sniff(head[:cut]) is MORE
    assert sniff(b"GET http://a.test/ HTTP/1.1\r\nHost: b.test\r\n\r\n") == Sniffed("http", "a.test")
    assert sniff(b"GET / HTTP/1.0\r\n\r\n") == Sniffed("http", None)
    for bad in (b"GET / HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
                b"GET / HTTP/1.1\r\nX: y\r\n Host: b.test\r\n\r\n",
                b"GET / HTTP/2\r\n\r\n", b"get / HTTP/1.1\r\n\r\n",
                b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * MAX_HELLO):
        with pytest.raises(Malformed):
            sniff(bad)


_HELLO = client_hello("a.test")


@settings(max_examples=300)
@given(st.binary(max_size=600), st.integers(min_value=0, max_value=600))
def test_any_bytes_give_an_answer_or_malformed(noise: bytes, cut: int) -> None:
    for data in (noise, b"\x16\x03\x01" + noise, _HELLO[:cut] + noise,
                 b"GET / HTTP/1.1\r\nHost: " + noise + b"\r\n\r\n"):
        try:
            answer = sniff(data)
        except Malformed:
            continue
        assert answer is MORE or isinstance(answer, Sniffed)
        if isinstance(answer, Sniffed) and answer.name is not None:
            assert answer.name.isascii() and answer.name.isprintable() and " " not in answer.name


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z0-9]{1,10}){0,4}", fullmatch=True),
       st.integers(min_value=1, max_value=300))
def test_any_name_comes_back_from_a_hello_in_any_record_size(name: str, size: int) -> None:
    assert sniff(handmade_hello(sni(name.encode()), record_size=size)) == Sniffed("tls", name)
