"""What every ``tarf-tui`` command shares, defined once (sqlite-utils' way): the options used by
several commands, the mapping of errors to exit codes, and the workspace opened through a
context manager. ``cli``, ``headless`` and ``runs_cli`` import this module; it imports none of
them (no import circle).

Exit codes: 0 success; 1 a run failed, diverged or was killed (headless); 2 bad input, a
missing resource, a damaged file or a write refused by a read-only workspace (one line on
stderr, nothing started); 130 interrupted.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer

from engine.errors import TarfError
from engine.store import Workspace

from .launcher import Launcher

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130

WORKSPACE_HELP = "Folder holding tarf.db, logs and the model cache (default ./tarf-runs)."
WorkspaceOpt = typer.Option(None, "--workspace", "-w", envvar="TARF_HOME", show_default=False,
                            help=WORKSPACE_HELP)
JsonOpt = typer.Option(False, "--json", help="JSON instead of a table.")


def fail(err: Exception | str, code: int = EXIT_BAD_INPUT) -> None:
    """One line on stderr, then exit ``code``."""
    typer.echo(f"error: {' '.join(str(err).split())}", err=True)
    raise typer.Exit(code)


def errors_to_exit_codes(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The one place errors become exit codes: ``TarfError`` (bad input, missing data, damaged
    files, read-only workspaces) -> one line and ``err.exit_code`` (2); Ctrl-C -> 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TarfError as e:
            fail(e, getattr(e, "exit_code", EXIT_BAD_INPUT))
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


def workspace_of(ctx: typer.Context, workspace: Optional[Path]) -> Optional[Path]:
    """The command's ``--workspace``, else the root's (``tarf-tui -w DIR runs list``)."""
    if workspace is not None:
        return workspace
    return ctx.find_root().params.get("workspace")


@contextlib.contextmanager
def open_launcher(workspace: str | os.PathLike | None, write: bool = False) -> Iterator[Launcher]:
    """A launcher on the workspace's store, closed afterwards. ``write``: refuse a workspace
    that cannot be written (exit 2); without it such a workspace opens read-only and a
    one-line notice goes to stderr."""
    ws = Workspace(workspace)
    store = ws.open(write=write)
    if ws.notice:
        typer.echo(f"note: {ws.notice}", err=True)
    try:
        from .slurm import workspace_executor  # each row cancelled / synced by its own executor

        yield Launcher(store, workspace_executor(store))
    finally:
        store.close()


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "JsonOpt",
           "WorkspaceOpt", "errors_to_exit_codes", "fail", "open_launcher", "workspace_of"]
