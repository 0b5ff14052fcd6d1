"""The ``edgeseg`` command line: thin wrappers that parse, call one function, print."""

from __future__ import annotations

import importlib

import typer
from typer.core import TyperOption


def _flag_reads_as_flag(display_type_rich):  # noqa: ANN001, ANN202
    """Typer 0.29's Rich help shows a flag's type (``--json <bool>``) as if it took a value;
    its plain help leaves it out. A flag (``--json``, ``--gpu/--no-gpu``, ``--help``) shows
    no type here either; options that take a value keep theirs."""

    def display(self: TyperOption, ctx: typer.Context) -> str | None:
        if self.is_flag and not self.count and self.metavar is None:
            return None
        return display_type_rich(self, ctx)

    return display


if hasattr(TyperOption, "display_type_rich"):  # the Rich help's type column, where typer has one
    TyperOption.display_type_rich = _flag_reads_as_flag(TyperOption.display_type_rich)

app = typer.Typer(
    name="edgeseg",
    help="MobileNet-SegNet segmentation from Keras to the Raspberry Pi: "
    "build, train, int8-quantize, convert, verify, run.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)



def _version(value: bool) -> None:
    if value:
        from edgeseg import __version__

        typer.echo(f"edgeseg {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    debug: bool = typer.Option(False, "--debug", help="On an error, also print its cause "
                               "with the traceback (for bug reports)."),
) -> None:
    """MobileNet-SegNet segmentation from Keras to the Raspberry Pi."""
    from edgeseg.cli import _common

    _common.DEBUG = debug


# Each module registers its commands on ``app``; none imports TensorFlow at import time.
# No try/except: a command module that fails to import stops the CLI with its error
# instead of silently taking its command away.
_COMMAND_MODULES = (
    "build", "data", "train", "evaluate", "convert", "compare", "inspect", "export",
    "run", "bench", "bundle", "demo", "imports", "predict", "plan",
)
for _name in _COMMAND_MODULES:
    importlib.import_module(f"edgeseg.cli.{_name}").register(app)


def main() -> None:
    """Console-script entry point."""
    app()
