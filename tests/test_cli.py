"""The command line: every command is registered and answers --help."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from edgeseg.cli import app

COMMANDS = ("build", "data", "train", "evaluate", "convert", "compare", "inspect", "export",
            "run", "bench", "bundle", "demo")


def test_every_command_is_registered() -> None:
    registered = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    missing = set(COMMANDS) - registered
    assert not missing, f"not registered: {sorted(missing)}"


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_works(command: str) -> None:
    r = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert f" {command} [OPTIONS]" in r.output and "--help" in r.output


def test_unknown_command_is_an_error() -> None:
    r = CliRunner().invoke(app, ["evaluat"])
    assert r.exit_code == 2 and "No such command" in r.output
