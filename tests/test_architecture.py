"""The import contract: each folder of polydesk/ is one layer, and imports point down only.

docs/architecture.md draws the same picture. Every ``import`` counts, also those inside
functions (the lazy ones are still dependencies). A folder may import its own modules and any
folder of a lower layer; folders of one layer are independent of each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "polydesk"

# Lowest first. Folders on one line are side by side: neither imports the other.
LAYERS: list[set[str]] = [
    {"core"},  # pure: the words of the product and its rules
    {"config"},  # settings, read once and passed down
    {"system", "store"},  # the OS (processes, cgroups, X11, accounts, systemd) and SQLite
    {"backends", "thumbnails"},  # where sessions run; pictures of their screens
    {"manager"},  # the use cases: the only writer of sessions and the audit log
    {"fleet"},  # many hosts over NATS, on top of each host's manager
    {"web"},  # HTTP: pages, REST, WebSocket events, the station bridge
    {"app"},  # the composition root: builds and closes everything
    {"cli"},  # the command line: a client of the daemon (and `serve`, through app)
    {"__main__"},  # python -m polydesk
]
RANK = {part: rank for rank, parts in enumerate(LAYERS) for part in parts}
# Beyond layering: who may not import whom although it is lower.
FORBIDDEN: dict[str, set[str]] = {
    "web": {"backends", "system", "store"},  # the web reaches sessions only through the manager
    "fleet": {"backends", "store"},
    "cli": {"manager", "backends", "store", "thumbnails", "fleet", "web"},  # a client, over HTTP
}


def part_of(module: str) -> str:
    """The folder (or root module) of ``polydesk.x.y``: ``x``."""
    return module.split(".")[1]


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, polydesk module) for every import of ours in the file at ``path``."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("polydesk.")]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                anchor = module.split(".")[: -node.level if path.name != "__init__.py" else None]
                base = ".".join([*anchor[: len(anchor) - (node.level - 1)], *([base] if base else [])])
            if base == "polydesk":
                found += [(node.lineno, f"polydesk.{a.name}") for a in node.names]
            elif base.startswith("polydesk."):
                found.append((node.lineno, base))
    return found


def violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent)
        if len(rel.parts) < 2 or rel.parts[1] == "locale":
            continue
        mine = rel.parts[1].removesuffix(".py")
        if mine == "__init__":
            continue
        for line, target in imports_of(path):
            theirs = part_of(target)
            if theirs == mine:
                continue
            where = f"{rel}:{line} imports {target}"
            if mine not in RANK or theirs not in RANK:
                problems.append(f"{where}: {mine if mine not in RANK else theirs} is in no layer")
            elif RANK[theirs] >= RANK[mine]:
                problems.append(f"{where}: {theirs} is not below {mine}")
            elif theirs in FORBIDDEN.get(mine, set()):
                problems.append(f"{where}: {mine} may not import {theirs}")
    return problems


def test_imports_point_down_only() -> None:
    problems = violations()
    assert not problems, "\n".join(problems)


def test_every_folder_is_in_a_layer() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert folders | modules <= set(RANK), sorted((folders | modules) - set(RANK))


@pytest.mark.parametrize(("source", "expected"), [
    ("from polydesk.web.routes.api import ERRORS\n", "web is not below manager"),
    ("import polydesk.cli.main\n", "cli is not below manager"),
    ("from polydesk import app\n", "app is not below manager"),
])
def test_the_check_sees_an_upward_import(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         source: str, expected: str) -> None:
    """The contract is not vacuous: an upward import put into the manager is named."""
    fake = tmp_path / "polydesk"
    (fake / "manager").mkdir(parents=True)
    (fake / "manager" / "oops.py").write_text(source)
    monkeypatch.setattr(__import__(__name__, fromlist=["PACKAGE"]), "PACKAGE", fake)
    assert [p.split(": ", 1)[1] for p in violations()] == [expected]
