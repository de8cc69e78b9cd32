"""Settings: one table of name / default / help, built explicitly from a TOML file.

Nothing here runs at import; ``load_settings`` is called by the composition root.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polydesk.config.fleet import FleetSettings, fleet_markdown, load_fleet
from polydesk.core.i18n import N_
from polydesk.core.model import InvalidRequest

DEFAULT_CONFIG = "/etc/polydesk/polydesk.toml"
DEFAULT_STATE_DIR = "/var/lib/polydesk"
DEFAULT_RUNTIME_DIR = "/run/polydesk"


def _setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class Settings:
    listen: str = _setting("127.0.0.1:8765", "Address (host:port) of the web page and REST API.")
    state_dir: str = _setting(DEFAULT_STATE_DIR, "SQLite database and other state (env POLYDESK_STATE_DIR).")
    runtime_dir: str = _setting(
        DEFAULT_RUNTIME_DIR, "API socket, per-session sockets and cookies (env POLYDESK_RUNTIME_DIR)."
    )
    admin_group: str = _setting("polydesk-admin", "Unix group whose members are administrators.")
    dashboard_group: str = _setting("polydesk-dashboard", "Unix group whose members are Dashboard users.")
    pam_service: str = _setting(
        "login", "PAM service (/etc/pam.d/NAME) that checks web sign-in passwords. Polydesk holds back "
        "repeated failures itself (security.md), so a service with no fixed delay after a failure "
        "answers a wrong password at once; Debian's `login` waits 3 s (pam_faildelay)."
    )
    role_cache_seconds: float = _setting(
        5.0, "Roles follow the Unix groups: a change of an account's groups counts for its requests and "
        "its sessions within this many seconds, without signing in again; 0 = read the groups every time."
    )
    logoff_grace: int = _setting(30, "Seconds between the log-off warning and the end of a session.")
    close_wait: float = _setting(5.0, "Seconds to wait for windows to close politely before SIGTERM.")
    kill_after: float = _setting(3.0, "Seconds between SIGTERM and SIGKILL of a session's processes.")
    launch_allowed: str = _setting(
        "any", "What Dashboard users may launch in other users' sessions (applications.md): `any` (a "
        "program typed, an address, an installed application) or `listed` (only the applications "
        "installed on the host, from their .desktop files, and web addresses). Administrators may "
        "launch anything; a user in their own session too."
    )
    allow_multiple_sessions: bool = _setting(
        False, "Let one account have several sessions; otherwise logging on again resumes."
    )
    block_message: str = _setting(
        N_("Station blocked"), "Message shown on a blocked session's screen; this default is shown in "
        "each session's language (\"Estação bloqueada\"; see docs/languages.md)."
    )
    block_guard_interval: float = _setting(
        0.5, "Seconds between checks of each blocked session for what undid its block from inside "
        "(input turned back on in Xvnc, the cover window closed), which is put back and counted "
        "(`block_undone`, audited); 0 = no checks (the station bridge still drops a blocked "
        "station's input)."
    )
    idle_disconnect_after: int = _setting(
        0, "Seconds without keyboard or mouse input after which an active session is disconnected "
        "(it keeps running; a warning is shown in it first); 0 = never."
    )
    disconnected_logoff_after: int = _setting(
        0, "Seconds a session may stay disconnected before it is logged off (gracefully: its "
        "windows are asked to close first); 0 = never."
    )
    desktop: str = _setting(
        "", "Shell command run as the user when ~/.xsession is absent; empty = xterm and openbox."
    )
    geometry: str = _setting("1280x800", "Size of each session's screen until its station's browser "
                             "gives its own (within `min_geometry` .. `max_geometry`).")
    min_geometry: str = _setting(
        "640x480", "Smallest screen a station's browser may resize its session to (WIDTHxHEIGHT); a "
        "smaller window shows the desktop scaled down.")
    max_geometry: str = _setting(
        "3840x2160", "Largest screen a station's browser may resize its session to (WIDTHxHEIGHT, at "
        "most 4096x4096); a larger window shows the desktop at this size. Equal to `min_geometry`: "
        "sessions keep that size.")
    depth: int = _setting(24, "Colour depth of each session's screen: 24 or 32.")
    first_display: int = _setting(10, "Lowest X display number given to a session.")
    process_tracking: str = _setting(
        "auto", "How session processes are tracked: auto, cgroup2, cgroup1 or marker."
    )
    session_max_processes: int = _setting(
        2048, "Processes and threads one session may have at once (the cgroup's `pids.max`): a fork "
        "bomb stops there; 0 = no limit."
    )
    session_memory_max: str = _setting(
        "50%", "Memory one session may use: a share of the machine's RAM (`50%`) or a size (`2G`, "
        "`512M`); past it the kernel reclaims, then kills within that session only (cgroup2 "
        "`memory.max`, with `memory.high` a tenth below; v1 `memory.limit_in_bytes`); `0` = no limit."
    )
    session_cpu_weight: int = _setting(
        100, "CPU weight of each session (cgroup2 `cpu.weight`, 1 to 10000; v1 `cpu.shares` = weight x "
        "10.24): sessions share the CPU equally, and all of them together weigh as much as the "
        "daemon; 0 = the kernel's default."
    )
    allowed_system_accounts: list[str] = field(
        default_factory=list,
        metadata={"help": "Accounts given a desktop although Polydesk refuses them otherwise: root, "
                          "system accounts (uid below `UID_MIN` of /etc/login.defs) and accounts "
                          "whose shell is not a login shell listed in /etc/shells. A desktop of root "
                          "makes every administrator of Polydesk root of the machine (see security.md)."},
    )
    monitoring: bool = _setting(True, "Dashboard users may watch sessions (thumbnails).")
    show_privileged_sessions: bool = _setting(
        False, "Show administrator and Dashboard-user sessions as thumbnails."
    )
    dashboard_picture_kbps: int = _setting(
        2000, "Most kilobits per second of thumbnails sent to one Dashboard page (its events "
        "socket); past it the page gets fewer, newer pictures, and screens nobody else watches are "
        "looked at less often too. 0 = no limit (docs/dashboard.md)."
    )
    privacy_notice: bool = _setting(True, "Tell standard users at logon that sessions may be watched.")
    chat_max_length: int = _setting(
        500, "Longest chat message (characters, 1 to 2000), for everyone; the API's schema says the "
        "same (docs/chat.md)."
    )
    chat_messages_per_minute: int = _setting(
        6, "Chat messages (and raised hands) a session's user may send in any 60 seconds; past it "
        "they are refused (429) until the minute has passed. Dashboard users are not limited; "
        "0 = no limit."
    )
    chat_retention_hours: float = _setting(
        168.0, "Hours a chat message is kept (SQLite, across restarts); older ones are dropped, "
        "checked at start and every few minutes; 0 = kept until the session ends."
    )
    chat_replies: list[str] = field(
        default_factory=lambda: [N_("I am coming."), N_("Please wait a moment."), N_("Well done!"),
                                 N_("Try again, you are close.")],
        metadata={"help": "Predefined replies the Dashboard offers in a chat panel (one click sends "
                          "one); these defaults are shown in each Dashboard's language."},
    )
    language: str = _setting(
        "", "The server language: en or pt_BR; empty = the daemon's environment (LANG). Shown in a "
        "session (log-off notice, block cover, message window, idle warning) when neither its "
        "station's browser nor its user's desktop settings ask for a language Polydesk has, and on "
        "web pages whose browser asks for none. The CLI follows its user's LANG."
    )
    request_timeout: float = _setting(
        10.0, "Seconds a client has to send a whole request (headers and body), from its first byte "
        "or from connecting; a slower one is disconnected (slow-loris). Both listeners."
    )
    max_connections: int = _setting(
        2000, "Most connections (pages, API calls, stations, events sockets) the web listener keeps "
        "at once; never more than half the daemon's open-file limit, so the API socket and the "
        "sessions always have some. Over it a client gets 503."
    )
    max_request_body: int = _setting(
        1 << 20, "Largest request body (bytes) the daemon reads; a larger one gets 413 before it is "
        "read. Bodies are read only once the caller is known (anonymous: the log-on form, 16 KiB)."
    )
    trusted_proxies: list[str] = field(
        default_factory=list,
        metadata={"help": "Addresses of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto "
                          "headers are believed (e.g. [\"127.0.0.1\"] for a proxy on this host); "
                          "empty = no client's forwarding headers are believed."},
    )
    metrics: bool = _setting(
        True, "Serve Prometheus metrics at /metrics (see metrics.md): on the API socket, and to local "
        "clients when `listen` is a loopback address; anywhere else only with `metrics_token`."
    )
    metrics_token: str = _setting(
        "", "Token a scraper sends (Authorization: Bearer TOKEN) to read /metrics from another machine "
        "or through a reverse proxy; empty = refused there."
    )
    backends: list[str] = field(
        default_factory=lambda: ["xvnc"],
        metadata={"help": "Session backends to run (formerly `hosts`, still read): xvnc (Polydesk's "
                          "own sessions), logind (the "
                          "machine's seats, display-manager and SSH sessions; see logind.md)."},
    )
    logind_bus: str = _setting(
        "system", "D-Bus address of the bus that carries systemd-logind; system = the system bus "
        "(or $DBUS_SYSTEM_BUS_ADDRESS)."
    )
    fleet: FleetSettings | None = field(default=None, metadata={
        "help": "Fleet mode: the `[fleet]` table below (see fleet.md); absent = this host on its own."})

    @property
    def state_path(self) -> Path:
        return Path(self.state_dir)

    @property
    def runtime_path(self) -> Path:
        return Path(self.runtime_dir)

    @property
    def api_socket(self) -> Path:
        return self.runtime_path / "api.sock"


def settings_table() -> list[tuple[str, Any, str]]:
    """(name, default, help) for every setting: the documentation's source."""
    rows = []
    for f in dataclasses.fields(Settings):
        factory: Any = f.default_factory
        default = f.default if f.default is not dataclasses.MISSING else factory()
        rows.append((f.name, default, f.metadata["help"]))
    return rows


def settings_markdown() -> str:
    """docs/configuration.md, generated from the table so the two never drift."""
    lines = [
        "# Configuration",
        "",
        "Polydesk reads `/etc/polydesk/polydesk.toml` (or `$POLYDESK_CONFIG`, or `polydesk serve "
        "--config FILE`).",
        "Every key is optional; an unknown key or a value of the wrong type stops the daemon with "
        "a message naming it; `polydesk config check [FILE]` names every bad key or value with its line.",
        "This page is generated from `polydesk/config/settings.py` (`python -m polydesk.config.settings > "
        "docs/configuration.md`).",
        "",
        "| setting | default | meaning |",
        "|---|---|---|",
    ]
    for name, default, help_text in settings_table():
        shown = json.dumps(default, ensure_ascii=False)
        lines.append(f"| `{name}` | `{shown}` | {help_text} |")
    return "\n".join(lines) + "\n" + fleet_markdown()


def _check(name: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
        raise InvalidRequest(f"setting {name!r} must be {expected.__name__}, not {value!r}")
    return value


# Settings under an older name: old name -> current name (docs/configuration.md says which).
RENAMED = {"hosts": "backends"}


def load_settings(path: str | None = None, env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the TOML file (if it exists), then the POLYDESK_* paths, then ``overrides``."""
    env = dict(os.environ) if env is None else env
    config_path = path or env.get("POLYDESK_CONFIG") or DEFAULT_CONFIG
    values: dict[str, Any] = {}
    if Path(config_path).exists():
        with open(config_path, "rb") as fh:
            try:
                values = tomllib.load(fh)
            except tomllib.TOMLDecodeError as exc:
                raise InvalidRequest(f"{config_path}: {exc}") from None
    elif path:
        raise InvalidRequest(f"configuration file {path} does not exist")
    for key, var in (("state_dir", "POLYDESK_STATE_DIR"), ("runtime_dir", "POLYDESK_RUNTIME_DIR")):
        if env.get(var):
            values[key] = env[var]
    values.update(overrides)
    for old, new in RENAMED.items():  # a setting's name before it was renamed is still read
        if old in values and new not in values:
            values[new] = values.pop(old)
    defaults = {name: default for name, default, _ in settings_table()}
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise InvalidRequest(f"unknown setting(s) in {config_path}: {', '.join(unknown)}")
    fleet = values.pop("fleet", None)  # a table of its own, checked by fleet_config
    checked = {name: _check(name, value, defaults[name]) for name, value in values.items()}
    return Settings(**checked, fleet=None if fleet is None else load_fleet(fleet))


if __name__ == "__main__":
    print(settings_markdown(), end="")
