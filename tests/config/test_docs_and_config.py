"""Settings load as documented, and the documentation cannot drift from the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer.main

from polydesk.cli.main import app
from polydesk.config.settings import load_settings, settings_markdown, settings_table
from polydesk.core.model import InvalidRequest

ROOT = Path(__file__).parents[2]


def test_configuration_doc_is_generated_from_the_table() -> None:
    assert (ROOT / "docs" / "configuration.md").read_text() == settings_markdown(), (
        "docs/configuration.md is stale: python -m polydesk.config.settings > docs/configuration.md"
    )


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    documented = set(re.findall(r"`polydesk ([a-z-]+)", readme))
    commands = {c.name for c in typer.main.get_command(app).commands.values()}  # type: ignore[attr-defined]
    assert commands <= documented, f"undocumented commands: {sorted(commands - documented)}"


def test_settings_from_file_and_environment(tmp_path: Path) -> None:
    config = tmp_path / "polydesk.toml"
    config.write_text('logoff_grace = 10\nkill_after = 1\nbackends = ["xvnc"]\n')
    settings = load_settings(str(config), env={"POLYDESK_STATE_DIR": "/srv/state"})
    assert (settings.logoff_grace, settings.kill_after, settings.state_dir) == (10, 1.0, "/srv/state")
    assert settings.runtime_dir == "/run/polydesk"


def test_a_renamed_setting_is_still_read_under_its_old_name(tmp_path: Path) -> None:
    config = tmp_path / "polydesk.toml"
    config.write_text('hosts = ["xvnc", "logind"]\n')  # "backends" before 0.2
    assert load_settings(str(config), env={}).backends == ["xvnc", "logind"]
    config.write_text('hosts = ["xvnc"]\nbackends = ["logind"]\n')  # the new name wins
    with pytest.raises(InvalidRequest, match="hosts"):
        load_settings(str(config), env={})


@pytest.mark.parametrize(("text", "named"), [
    ("logof_grace = 10\n", "logof_grace"),
    ('logoff_grace = "ten"\n', "logoff_grace"),
    ("allow_multiple_sessions = 1\n", "allow_multiple_sessions"),
    ("listen = \n", "polydesk.toml"),
])
def test_bad_settings_are_named(tmp_path: Path, text: str, named: str) -> None:
    config = tmp_path / "polydesk.toml"
    config.write_text(text)
    with pytest.raises(InvalidRequest, match=named):
        load_settings(str(config), env={})


def test_every_setting_has_help() -> None:
    assert all(help_text.strip() for _, _, help_text in settings_table())
