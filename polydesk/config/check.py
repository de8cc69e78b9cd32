"""``polydesk config check``: every problem of a configuration file, each with its line.

Validity is the daemon's own: each key is passed alone through ``config.load_settings``,
so a value the daemon would refuse is refused here with the daemon's words, and a setting
added to the table is checked without a change here. On top of that come a few checks of
values the daemon only trips over later, at start (``VALUE_RULES``).

tomllib reports positions only for syntax errors; for a bad key or value the line is found
by scanning the text for ``key =`` inside the key's table (``find_line``).
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polydesk.config.settings import RENAMED, load_settings, settings_table
from polydesk.config.sizes import memory_size
from polydesk.core.i18n import normalize
from polydesk.core.model import InvalidRequest

_NOWHERE = {"POLYDESK_CONFIG": "/nonexistent/polydesk.toml"}  # load_settings must read no file
_TOML_POSITION = re.compile(r"\(at line (\d+), column (\d+)\)$")
_TABLE_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_NAMED_KEY = re.compile(r"setting '([A-Za-z0-9_.-]+)'")


@dataclass(frozen=True)
class Problem:
    line: int | None  # 1-based; None when no line can be named (say, a key the text spells oddly)
    key: str | None  # dotted for a key in a table: "fleet.host"
    message: str

    def format(self, path: str) -> str:
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


def _port(value: str) -> bool:
    host, sep, port = value.rpartition(":")
    return bool(sep and host and port.isdigit() and 0 < int(port) < 65536)


def _memory(value: str) -> bool:
    try:
        memory_size(value, ram=1 << 30)
    except ValueError:
        return False
    return True


def _screen_size(value: str) -> bool:
    match = re.fullmatch(r"(\d{1,5})x(\d{1,5})", value)
    return match is not None and all(64 <= int(n) <= 4096 for n in match.groups())


# Values the type check lets through but the daemon cannot use: (test, what is expected).
VALUE_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "listen": (lambda v: v == "" or _port(v), "host:port, e.g. 127.0.0.1:8765 (or empty: API socket only)"),
    "depth": (lambda v: v in (24, 32), "24 or 32"),
    "geometry": (lambda v: re.fullmatch(r"[1-9]\d{1,4}x[1-9]\d{1,4}", v) is not None,
                 "WIDTHxHEIGHT, e.g. 1280x800"),
    "min_geometry": (lambda v: _screen_size(v), "WIDTHxHEIGHT from 64x64 to 4096x4096, e.g. 640x480"),
    "max_geometry": (lambda v: _screen_size(v), "WIDTHxHEIGHT from 64x64 to 4096x4096, e.g. 3840x2160"),
    "first_display": (lambda v: 0 <= v < 10000, "a display number from 0 to 9999"),
    "language": (lambda v: v == "" or normalize(v) is not None, "en or pt_BR (or empty: the daemon's LANG)"),
    "launch_allowed": (lambda v: v in ("any", "listed"), "any or listed"),
    "process_tracking": (lambda v: v in ("auto", "cgroup2", "cgroup1", "marker"),
                         "auto, cgroup2, cgroup1 or marker"),
    "session_memory_max": (lambda v: _memory(v), "a share of RAM (50%), a size (2G, 512M) or 0"),
    "session_cpu_weight": (lambda v: 0 <= v <= 10000, "0 (the kernel's default) to 10000"),
    "allowed_system_accounts": (lambda v: all(isinstance(n, str) and n for n in v),
                                "a list of account names"),
    "backends": (lambda v: bool(v) and all(h in ("xvnc", "logind", "fake") for h in v),
              'a non-empty list of "xvnc", "logind" (and "fake" for tests)'),
}


def check_text(text: str) -> list[Problem]:
    """Every problem of the configuration ``text``, in the order of the file."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POSITION.search(message)
        line = int(found.group(1)) if found else None
        return [Problem(line, None, f"TOML syntax: {_TOML_POSITION.sub('', message).strip()}"
                        + (f" (column {found.group(2)})" if found else ""))]
    known = {name for name, _, _ in settings_table()}
    non_negative = {name for name, default, _ in settings_table()
                    if isinstance(default, int | float) and not isinstance(default, bool) and default >= 0}
    problems: list[Problem] = []
    for key, value in data.items():
        # A table ([fleet]): each of its keys alone first, so that every bad one is named;
        # then the whole table, for the rules between its keys.
        parts = [{name: item} for name, item in value.items()] if isinstance(value, dict) else []
        refused: list[tuple[dict[str, Any] | None, str]] = [
            (part, why) for part in parts if (why := _try(key, part))]
        if not refused and (why := _try(key, value)):
            refused = [(None, why)]
        problems += [_refused(text, key, why, known, part) for part, why in refused]
        if refused:
            continue
        rule = VALUE_RULES.get(RENAMED.get(key, key))
        if rule is not None and not rule[0](value):
            problems.append(Problem(find_line(text, key), key, f"must be {rule[1]}, not {value!r}"))
        elif key in non_negative and value < 0:  # seconds, counts, sizes: none is below zero
            problems.append(Problem(find_line(text, key), key, f"must be 0 or more, not {value!r}"))
    return sorted(problems, key=lambda p: (p.line or 0))


def _try(key: str, value: Any) -> str | None:
    """The daemon's refusal of ``key = value`` alone, if it refuses it."""
    try:
        load_settings(None, env=_NOWHERE, **{key: value})
    except InvalidRequest as exc:
        return str(exc)
    except TypeError:  # a table the daemon has no parameter for
        return f"unknown setting(s): {key}"
    return None


def _unknown(text: str, key: str, known: set[str]) -> Problem:
    close = difflib.get_close_matches(key, sorted(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return Problem(find_line(text, key), key, f"unknown setting{hint}")


def _refused(text: str, key: str, message: str, known: set[str], part: dict[str, Any] | None) -> Problem:
    """The daemon's refusal, placed on the line of the key it names (``fleet.host``); ``part``
    is the one key of a table that was tried alone."""
    if message.startswith("unknown setting"):
        if part is None:
            return _unknown(text, key, known)
        [name] = part
        return Problem(find_line(text, name, (key,)), f"{key}.{name}", "unknown setting")
    named = _NAMED_KEY.search(message)
    dotted = named.group(1) if named and named.group(1).split(".")[0] == key else key
    *table, name = dotted.split(".")
    line = find_line(text, name, tuple(table)) or find_line(text, key)
    return Problem(line, dotted, message.removeprefix(f"setting '{dotted}' "))


def find_line(text: str, key: str, table: tuple[str, ...] = ()) -> int | None:
    """The 1-based line where ``key`` is set in ``table`` (() = top level), else None.

    Understands ``[table]`` headers, dotted keys (``fleet.host = ...`` at the top level),
    inline tables and quoted keys. The first match wins: TOML forbids setting a key twice.
    """
    wanted = (*table, key)
    current: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), 1):
        header = _TABLE_HEADER.match(line)
        if header:
            current = _split_key(header.group(1))
            if current == wanted:  # a setting given as a whole table: [fleet]
                return number
            continue
        left, sep, _ = line.partition("=")
        if not sep or left.strip().startswith("#"):
            continue
        path = (*current, *_split_key(left))
        if path == wanted or (path == wanted[:len(path)] and len(path) < len(wanted)):
            return number  # the key itself, or an inline table holding it: fleet = { host = 1 }
    return None


def _split_key(raw: str) -> tuple[str, ...]:
    parts = re.findall(r'"([^"]*)"|\'([^\']*)\'|([A-Za-z0-9_-]+)', raw)
    return tuple(next(p for p in part if p) if any(part) else "" for part in parts)
