"""What the hosts of a fleet say to each other: key names, subjects and signed messages.

Every request and every answer is signed with the sending host's nkey (ed25519,
the key format NATS itself uses, so one seed can also log the host on to NATS).
The receiver checks the signature against the public key it was configured to
trust for the host named in the message, so host C can neither pass itself off
as host A nor alter what A asked for; a time window and a nonce cache refuse a
replayed request.

    python -m polydesk.fleet.wire FILE   prints the public key of the seed in FILE,
                                         making a new seed there (0600) if there is none
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nacl.exceptions
import nacl.signing
import nkeys  # type: ignore[import-untyped]

from polydesk.config.fleet import valid_public_key

SIGNED_WINDOW_S = 60.0  # hosts' clocks must agree this well (NTP); older requests are refused
FROM, TIME, NONCE, META, SIG = "Pd-From", "Pd-Time", "Pd-Nonce", "Pd-Meta", "Pd-Sig"


class Forged(Exception):
    """A message whose signature, signer or freshness does not hold; the text says which."""


# Keys of the bucket: one per host, one per session.

def host_key(host: str) -> str:
    return f"host.{host}"


def session_key(host: str, session_id: str) -> str:
    return f"session.{host}.{session_id}"


def parse_key(key: str) -> tuple[str, str, str | None] | None:
    """("host", name, None) or ("session", host, id); None for a key of another kind."""
    parts = key.split(".")
    if len(parts) == 2 and parts[0] == "host":
        return "host", parts[1], None
    if len(parts) == 3 and parts[0] == "session":
        return "session", parts[1], parts[2]
    return None


def command_subject(prefix: str, host: str, action: str) -> str:
    return f"{prefix}.cmd.{host}.{action}"


# Keys

class Signer:
    """This host's private key."""

    def __init__(self, seed: bytes) -> None:
        try:
            pair = nkeys.from_seed(bytearray(seed.strip()))
        except nkeys.NkeysError as exc:
            raise ValueError(f"not an nkey seed: {exc}") from None
        self._pair = pair
        self.seed_text = seed.strip().decode()  # for NATS nkey authentication with the same key
        self.public_key: str = pair.public_key.decode()
        if not valid_public_key(self.public_key):
            raise ValueError("the seed is not a user nkey seed (SU...)")

    def sign(self, data: bytes) -> bytes:
        signature: bytes = self._pair.sign(data)
        return signature


def verify_key(public_key: str) -> nacl.signing.VerifyKey:
    """The ed25519 key inside an nkey user public key (U...)."""
    if not valid_public_key(public_key):
        raise ValueError(f"not a public nkey: {public_key!r}")
    raw = base64.b32decode(public_key + "=" * (-len(public_key) % 8))
    return nacl.signing.VerifyKey(raw[1:-2])


def new_seed() -> bytes:
    seed: bytes = nkeys.encode_seed(secrets.token_bytes(32), nkeys.PREFIX_BYTE_USER)
    return seed


def load_or_make_seed(path: Path) -> bytes:
    """The seed in ``path``; a new one (0600, root's) when the file does not exist yet."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return path.read_bytes().strip()
    seed = new_seed()
    with os.fdopen(fd, "wb") as file:
        file.write(seed + b"\n")
    return seed


# Signed messages: the body, and headers naming the sender, when, a nonce and the signature

def _signed_bytes(subject: str, sender: str, when: str, nonce: str, meta: str, body: bytes) -> bytes:
    return "\n".join((subject, sender, when, nonce, meta)).encode() + b"\n" + body


def seal(signer: Signer, sender: str, subject: str, body: bytes, *, nonce: str | None = None,
         meta: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Headers that sign ``body`` sent on ``subject`` by host ``sender``."""
    when = f"{time.time():.3f}"
    nonce = nonce or secrets.token_hex(12)
    meta_text = json.dumps(dict(meta or {}), separators=(",", ":"), sort_keys=True)
    signature = signer.sign(_signed_bytes(subject, sender, when, nonce, meta_text, body))
    return {FROM: sender, TIME: when, NONCE: nonce, META: meta_text,
            SIG: base64.urlsafe_b64encode(signature).decode()}


@dataclass(frozen=True)
class Opened:
    sender: str
    nonce: str
    meta: dict[str, Any]


def unseal(trusted: Mapping[str, nacl.signing.VerifyKey], subject: str,
           headers: Mapping[str, str] | None, body: bytes) -> Opened:
    """Who signed the message, or Forged saying why it cannot be believed."""
    headers = headers or {}
    sender = headers.get(FROM, "")
    if not sender:
        raise Forged("the message names no sending host")
    key = trusted.get(sender)
    if key is None:
        raise Forged(f"host {sender!r} is not trusted (not in fleet.trusted_hosts)")
    when, nonce, meta = headers.get(TIME, ""), headers.get(NONCE, ""), headers.get(META, "{}")
    try:
        signature = base64.urlsafe_b64decode(headers.get(SIG, ""))
        key.verify(_signed_bytes(subject, sender, when, nonce, meta, body), signature)
    except (ValueError, nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
        raise Forged(f"the signature is not that of host {sender}") from None
    try:
        age = abs(time.time() - float(when))
    except ValueError:
        raise Forged("the message has no valid time") from None
    if age > SIGNED_WINDOW_S:
        raise Forged(f"the message is {age:.0f} s away from this host's clock (replayed, or clocks "
                     "disagree)")
    return Opened(sender, nonce, json.loads(meta) if meta else {})


class ReplayGuard:
    """Nonces seen within the signed window: the same signed request is carried out once."""

    def __init__(self, window: float = SIGNED_WINDOW_S) -> None:
        self.window = window
        self._seen: dict[str, float] = {}

    def check(self, nonce: str) -> None:
        now = time.monotonic()
        if len(self._seen) > 10_000 or (self._seen and next(iter(self._seen.values())) < now):
            self._seen = {n: t for n, t in self._seen.items() if t > now}
        if nonce in self._seen:
            raise Forged("the request was already received (a replay)")
        self._seen[nonce] = now + 2 * self.window


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(Signer(load_or_make_seed(Path(argv[0]))).public_key)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
