"""What every command shares: error handling and the console."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console

from edgeseg.errors import EdgesegError

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

F = TypeVar("F", bound=Callable[..., Any])
DEBUG = False  # set by `edgeseg --debug`: print the cause of an error too


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error and return the Exit to raise."""
    err_console.print("[bold red]error:[/] ", end="", soft_wrap=True)
    err_console.print(message, markup=False, soft_wrap=True)
    return typer.Exit(code)


def _show_warning(message: Any, category: Any, filename: str, lineno: int,
                  file: Any = None, line: Any = None) -> None:
    """A warning as one ``warning: …`` line, without Python's source location."""
    err_console.print(f"warning: {message}", markup=False, soft_wrap=True)


def handle_errors(fn: F) -> F:
    """Turn EdgesegError, a missing file and Ctrl-C into one line and an exit code;
    print warnings as one line each (with ``--debug``, Python's default format)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                if not DEBUG:
                    warnings.showwarning = _show_warning
                return fn(*args, **kwargs)
        except EdgesegError as e:
            if DEBUG:  # the cause an EdgesegError wraps may be edgeseg's own bug
                import traceback

                err_console.print("".join(traceback.format_exception(e)), markup=False,
                                  soft_wrap=True)
            raise fail(str(e)) from None
        except FileNotFoundError as e:
            raise fail(f"{e.filename or e}: no such file; check the path.") from None
        except KeyboardInterrupt:
            raise fail("interrupted; nothing half-written was kept.", 130) from None

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def batch_progress(label: str = "epoch") -> Iterator[Callable[[int, int, int, Any], None]]:
    """A Rich bar for training: ``report(epoch, done, total, loss)`` updates it. The total
    is the batches per epoch, known before the first batch and the same every epoch."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[loss]}"), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task(label, total=None, loss="")

        def report(epoch: int, done: int, total: int, loss: Any) -> None:
            if done == 0:  # a new epoch: its own elapsed time
                bar.reset(task, total=total, description=f"{label} {epoch}", loss="")
            else:
                bar.update(task, completed=done, total=total,
                           loss="" if loss is None else f"loss {loss:.4f}")

        yield report
