"""The command line: every command is registered and answers --help."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from edgeseg.cli import app

COMMANDS = ("build", "data", "train", "evaluate", "convert", "compare", "inspect", "export",
            "run", "bench", "bundle", "demo", "import", "predict", "plan")


def test_every_command_is_registered() -> None:
    registered = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert registered == set(COMMANDS), (f"not registered: {sorted(set(COMMANDS) - registered)}; "
                                         f"not listed here: {sorted(registered - set(COMMANDS))}")


def test_a_command_module_that_cannot_be_imported_stops_the_cli() -> None:
    # Before, a ModuleNotFoundError for the command's own module was taken for
    # "not written yet" and the command silently vanished from the CLI.
    code = (
        "import importlib.abc, sys\n"
        "class Gone(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'edgeseg.cli.bundle':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Gone())\n"
        "import edgeseg.cli\n"
        "print('commands:', sorted(edgeseg.cli.typer.main.get_command(edgeseg.cli.app).commands))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode != 0, r.stdout
    assert "edgeseg.cli.bundle" in r.stderr.splitlines()[-1]


@pytest.mark.parametrize("command", COMMANDS)
def test_command_help_works(command: str) -> None:
    r = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0, r.output
    assert f" {command} [OPTIONS]" in r.output and "--help" in r.output


def test_unknown_command_is_an_error() -> None:
    r = CliRunner().invoke(app, ["evaluat"])
    assert r.exit_code == 2 and "No such command" in r.output
