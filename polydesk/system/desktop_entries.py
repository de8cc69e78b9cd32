"""The applications installed on this host, from their ``.desktop`` files (the freedesktop.org
Desktop Entry Specification): name, icon, and the argument vector their ``Exec`` line gives.

Only the system's own directories are read (``XDG_DATA_DIRS`` of the daemon, not of any user):
what the Dashboard's picker offers, and what the ``listed`` launch setting allows, is what an
administrator installed. ``Exec`` is split by the specification's quoting rules into a vector,
its field codes (``%U``, ``%f`` ...) dropped: nothing goes through a shell.
"""

from __future__ import annotations

import io
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DIRS = ("/usr/local/share", "/usr/share")
ICON_SIZES = ("48x48", "64x64", "32x32", "128x128", "256x256", "24x24", "16x16")
MAX_FILE = 256 << 10  # bytes of a .desktop file read
MAX_ICON = 2 << 20  # bytes of an icon file read
_FIELD_CODES = {"%f", "%F", "%u", "%U", "%i", "%c", "%k", "%d", "%D", "%n", "%N", "%v", "%m"}


@dataclass(frozen=True)
class Entry:
    """One installed application."""

    id: str  # the file's name, "debian-xterm.desktop"
    name: str
    argv: tuple[str, ...]
    icon: str | None  # an icon name or an absolute path, as the file says
    wm_class: str | None = None  # StartupWMClass: how its windows name themselves
    names: dict[str, str] = field(default_factory=dict, compare=False)  # Name[pt_BR] ...

    def name_in(self, language: str | None) -> str:
        if language:
            for key in (language, language.split("_")[0]):
                if key in self.names:
                    return self.names[key]
        return self.name


def data_dirs() -> list[Path]:
    dirs = os.environ.get("XDG_DATA_DIRS") or ":".join(DEFAULT_DIRS)
    return [Path(d) / "applications" for d in dirs.split(":") if d.startswith("/")]


def installed(dirs: list[Path] | None = None) -> list[Entry]:
    """Every application a menu would show (Type=Application, not NoDisplay or Hidden, its
    program present), the first file of each id winning, sorted by name."""
    found: dict[str, Entry] = {}
    for directory in dirs if dirs is not None else data_dirs():
        try:
            files = sorted(directory.glob("*.desktop"))
        except OSError:
            continue
        for path in files:
            if path.name in found:
                continue
            entry = parse(path)
            if entry is not None:
                found[path.name] = entry
    return sorted(found.values(), key=lambda e: e.name.casefold())


def parse(path: Path) -> Entry | None:
    try:
        with path.open("rb") as fh:
            text = fh.read(MAX_FILE).decode("utf-8", errors="replace")
    except OSError:
        return None
    keys: dict[str, str] = {}
    section = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            section = line
            continue
        if section != "[Desktop Entry]" or "=" not in line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        keys.setdefault(key.strip(), value.strip())
    if keys.get("Type") != "Application" or "Name" not in keys or "Exec" not in keys:
        return None
    if keys.get("NoDisplay") == "true" or keys.get("Hidden") == "true":
        return None
    argv = exec_argv(keys["Exec"])
    if not argv or shutil.which(argv[0]) is None:
        return None
    if keys.get("Terminal") == "true":
        argv = ["xterm", "-e", *argv]
    names = {k[5:-1]: v for k, v in keys.items() if k.startswith("Name[") and k.endswith("]")}
    return Entry(path.name, keys["Name"], tuple(argv), keys.get("Icon") or None,
                 keys.get("StartupWMClass") or None, names)


def exec_argv(value: str) -> list[str]:
    """An Exec value as an argument vector: quoted as the specification says, field codes out."""
    try:
        parts = shlex.split(value.replace("\\\\", "\\"), posix=True)
    except ValueError:
        return []
    return [part.replace("%%", "%") for part in parts if part not in _FIELD_CODES]


def icon_file(icon: str | None) -> Path | None:
    """The file of an icon name (hicolor theme, then pixmaps), or the path the entry gives."""
    if not icon:
        return None
    if icon.startswith("/"):
        path = Path(icon)
        return path if path.is_file() else None
    if "/" in icon:
        return None
    for base in ("/usr/local/share/icons", "/usr/share/icons"):
        for size in ICON_SIZES:
            candidate = Path(base) / "hicolor" / size / "apps" / f"{icon}.png"
            if candidate.is_file():
                return candidate
    for extension in (".png", ".xpm", "_48x48.xpm", "_32x32.xpm"):
        candidate = Path("/usr/share/pixmaps") / f"{icon}{extension}"
        if candidate.is_file():
            return candidate
    return None


def icon_png(icon: str | None, size: int = 48) -> bytes | None:
    """The icon as a PNG of ``size`` pixels at most (XPM and PNG read; SVG is not drawn)."""
    path = icon_file(icon)
    if path is None:
        return None
    from PIL import Image  # only when an icon is asked for

    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_ICON)
        with Image.open(io.BytesIO(raw)) as image:
            picture = image.convert("RGBA")
            picture.thumbnail((size, size))
            out = io.BytesIO()
            picture.save(out, "PNG")
            return out.getvalue()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
