"""The ``[fleet]`` table of the configuration: one table of name / default / help, as config.py.

No ``[fleet]`` section means no fleet: the daemon is a single host with embedded
defaults. Pure apart from reading the machine's host name for the default.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from polydesk.core.model import InvalidRequest

# A host name is a NATS subject token and a key-value key token: no dots, no wildcards, and
# no "/" either, since fleet session ids are written host/id.
HOST_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
_BUCKET = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_PREFIX = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_USER_KEY_PREFIX = 20 << 3  # an nkey "user" public key: base32 starting with U


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class FleetSettings:
    host: str = _setting("", "This host's name in the fleet (letters, digits, `-`, `_`); empty = the "
                             "machine's short host name. Session ids elsewhere in the fleet are `host/id`.")
    servers: list[str] = field(default_factory=lambda: ["nats://127.0.0.1:4222"], metadata={
        "help": "NATS servers to connect to (every node of the cluster)."})
    seed_file: str = _setting("", "The host's nkey seed (`SU...`), which signs its requests and answers; "
                                  "empty = `fleet.seed` in the state directory, made at first start "
                                  "(print its public key with `python -m polydesk.fleet.wire FILE`).")
    trusted_hosts: dict[str, str] = field(default_factory=dict, metadata={
        "help": "Table of host name = public nkey (`U...`) of every other host of the fleet: only "
                "their requests are carried out and only their sessions shown."})
    credentials: str = _setting("", "NATS credentials file (`.creds`, JWT and seed) for the connection; "
                                    "empty = none.")
    nkey_auth: bool = _setting(False, "Authenticate the NATS connection with the seed_file nkey (the "
                                      "server lists the host's public key as an nkey user).")
    tls_ca: str = _setting("", "CA certificate file that NATS servers' certificates must chain to; "
                               "empty = the system's (TLS only for `tls://` servers or when set).")
    tls_cert: str = _setting("", "Client certificate file for NATS servers that ask for one (mutual TLS).")
    tls_key: str = _setting("", "Private key file of tls_cert.")
    bucket: str = _setting("polydesk_fleet", "JetStream key-value bucket holding hosts and sessions.")
    subject_prefix: str = _setting("polydesk", "First tokens of the request subjects "
                                               "(`<prefix>.cmd.<host>.<action>`).")
    replicas: int = _setting(1, "Copies of the bucket when this host creates it: 3 on a 3-node cluster, "
                                "so that a node restart loses nothing.")
    heartbeat: float = _setting(2.0, "Seconds between two heartbeats of this host.")
    offline_after: float = _setting(6.0, "Seconds without a heartbeat after which a host shows as offline.")
    stale_after: int = _setting(900, "Seconds after which the entries of a host that stopped heartbeating "
                                     "expire (the bucket's maximum age; live entries are refreshed).")
    request_timeout: float = _setting(5.0, "Seconds to wait for another host's answer (a log-off that "
                                           "waits for its sessions to end adds that wait).")


def fleet_table() -> list[tuple[str, Any, str]]:
    rows = []
    for f in dataclasses.fields(FleetSettings):
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        rows.append((f.name, default, f.metadata["help"]))
    return rows


def fleet_markdown() -> str:
    """The ``[fleet]`` part of docs/configuration.md."""
    lines = [
        "",
        "## `[fleet]`",
        "",
        "Present only on hosts of a fleet (see [fleet.md](fleet.md)); without it nothing of this "
        "table applies.",
        "",
        "| setting | default | meaning |",
        "|---|---|---|",
    ]
    for name, default, help_text in fleet_table():
        lines.append(f"| `{name}` | `{json.dumps(default, ensure_ascii=False)}` | {help_text} |")
    return "\n".join(lines) + "\n"


def default_host_name() -> str:
    short = socket.gethostname().split(".")[0]
    return re.sub(r"[^A-Za-z0-9_-]", "-", short)[:63] or "polydesk"


def valid_public_key(key: str) -> bool:
    """An nkey user public key: base32 of prefix byte, 32 key bytes and a CRC16 (as nkeys encodes it)."""
    try:
        raw = base64.b32decode(key + "=" * (-len(key) % 8))
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 35 or raw[0] != _USER_KEY_PREFIX:
        return False
    return int.from_bytes(raw[-2:], "little") == crc16(raw[:-2])


def crc16(data: bytes) -> int:
    """CRC-16/XMODEM, the checksum nkeys puts at the end of every encoded key."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def load_fleet(value: Any) -> FleetSettings:
    """FleetSettings from the ``[fleet]`` table; any wrong key or value is named in the error."""
    if isinstance(value, FleetSettings):
        return value
    if not isinstance(value, dict):
        raise InvalidRequest(f"setting 'fleet' must be a table ([fleet]), not {value!r}")
    defaults = {name: default for name, default, _ in fleet_table()}
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise InvalidRequest(f"unknown setting(s) in [fleet]: {', '.join(unknown)}")
    checked: dict[str, Any] = {}
    for name, given in value.items():
        expected = type(defaults[name])
        if expected is float and isinstance(given, int) and not isinstance(given, bool):
            given = float(given)
        if not isinstance(given, expected) or (expected in (int, float) and isinstance(given, bool)):
            raise InvalidRequest(f"setting 'fleet.{name}' must be {expected.__name__}, not {given!r}")
        checked[name] = given
    settings = FleetSettings(**checked)
    _validate(settings)
    return dataclasses.replace(settings, host=settings.host or default_host_name())


def _validate(s: FleetSettings) -> None:
    def bad(name: str, why: str) -> InvalidRequest:
        return InvalidRequest(f"setting 'fleet.{name}' {why}")

    if s.host and not HOST_NAME.match(s.host):
        raise bad("host", f"must be letters, digits, '-' or '_' (at most 63), not {s.host!r}")
    if not s.servers or not all(isinstance(u, str) and "://" in u for u in s.servers):
        raise bad("servers", f"must list NATS URLs such as nats://host:4222, not {s.servers!r}")
    for name, key in s.trusted_hosts.items():
        if not HOST_NAME.match(name):
            raise bad("trusted_hosts", f"names a host {name!r} that is not a valid host name")
        if not isinstance(key, str) or not valid_public_key(key):
            raise bad("trusted_hosts", f"gives {name!r} a value that is not a public nkey (U...)")
    if not _BUCKET.match(s.bucket):
        raise bad("bucket", f"must be letters, digits, '-' or '_', not {s.bucket!r}")
    if not _PREFIX.match(s.subject_prefix):
        raise bad("subject_prefix", f"must be dot-separated tokens, not {s.subject_prefix!r}")
    if s.replicas not in (1, 3, 5):
        raise bad("replicas", f"must be 1, 3 or 5, not {s.replicas}")
    if s.heartbeat <= 0 or s.request_timeout <= 0:
        raise bad("heartbeat" if s.heartbeat <= 0 else "request_timeout", "must be positive")
    if s.offline_after < 2 * s.heartbeat:
        raise bad("offline_after", "must be at least two heartbeats, so one lost beat is not an outage")
    if s.stale_after < max(10 * s.heartbeat, 2 * s.offline_after):
        raise bad("stale_after", "must be at least ten heartbeats and twice offline_after")
    if bool(s.tls_cert) != bool(s.tls_key):
        raise bad("tls_cert", "and tls_key go together")
