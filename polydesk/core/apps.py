"""Applications in sessions, in the product's words: what is running (``App``), and the
rules for what may be launched or opened (an argument vector, an address). Pure.

A launch is an argument vector, never a shell string: what the teacher typed is split
by the interface (``shlex``-like rules in the Dashboard, the shell of the CLI's caller), and the
daemon executes the vector as it is. An address is handed to ``xdg-open`` as one argument,
so ``;`` or ``$(...)`` in it are characters of the address, never commands.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from polydesk.core.model import InvalidRequest
from polydesk.core.texts import check_text

MAX_ARGS = 64
MAX_ARG = 4096
# Schemes xdg-open is given; anything else (javascript:, a .desktop path, data:) is refused.
URL_SCHEMES = ("http", "https", "ftp", "mailto", "file")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_DESKTOP_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,200}\.desktop$")

# How an application is launched on the Dashboard (setting launch_allowed): anything, or
# only the applications installed on the host (their .desktop files) and web addresses.
LAUNCH_ANY = "any"
LAUNCH_LISTED = "listed"


@dataclass(frozen=True)
class App:
    """One application window of a session, as MultiPoint lists them."""

    window: int  # the X window id
    title: str
    name: str  # the application's name: its .desktop Name, else its WM_CLASS class
    wm_class: str
    pid: int | None
    # "server": the X server knows which process made the window (X-Resource); "_NET_WM_PID":
    # only what the window claims (anyone can forge it); None: nobody can tell.
    pid_source: str | None
    start: int | None  # the process's start time in clock ticks since boot: names it with the pid
    started_at: float | None  # the same, as a time (epoch seconds)


def check_argv(argv: object) -> list[str]:
    """A non-empty list of texts with no NUL or control character; InvalidRequest naming the bad one."""
    if not isinstance(argv, list) or not argv:
        raise InvalidRequest("argv: give the program and its arguments as a non-empty list")
    if len(argv) > MAX_ARGS:
        raise InvalidRequest(f"argv: at most {MAX_ARGS} arguments")
    checked = []
    for index, arg in enumerate(argv):
        value = check_text(f"argv[{index}]", arg, max_length=MAX_ARG, required=index == 0)
        checked.append(value or "")
    return checked


def check_url(url: object) -> str:
    """An address for xdg-open: a URL of a known scheme, or an absolute path."""
    value = check_text("url", url, max_length=MAX_ARG, required=True)
    assert value is not None
    value = value.strip()
    if "\n" in value or "\r" in value or "\t" in value:
        raise InvalidRequest("url: one line, no tab")
    if value.startswith("/"):
        return value
    scheme = _SCHEME.match(value)
    if scheme is None or scheme.group(1).lower() not in URL_SCHEMES:
        raise InvalidRequest(f"url: an address starting with {', '.join(s + ':' for s in URL_SCHEMES)} "
                             "or an absolute path")
    return value


def check_desktop_id(app: object) -> str:
    if not isinstance(app, str) or not _DESKTOP_ID.fullmatch(app):
        raise InvalidRequest(f"app: {app!r} is not the name of a .desktop file")
    return app
