"""The ``tarf-tui`` command. A thin shell (sqlite-utils' habit): each command parses its options,
calls one library function and maps ``TarfError`` to one line on stderr and exit code 2.

    tarf-tui [--workspace DIR]          the Textual app (imported lazily)
    tarf-tui headless [OPTIONS]         batch runs, no Textual import
    tarf-tui runs list|show|compare|export|cancel|rm
    tarf-tui cases | datasets | methods
Never imports torch; imports textual only for the app itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from engine.errors import TarfError

app = typer.Typer(
    name="tarf-tui", no_args_is_help=False, add_completion=False, rich_markup_mode=None,
    help="Class-wise unlearning experiments when labels and target concepts do not coincide (TARF).",
    context_settings={"help_option_names": ["-h", "--help"]})

WorkspaceOpt = typer.Option(None, "--workspace", "-w", envvar="TARF_HOME",
                            help="Folder holding tarf.db, logs and the model cache (default ./tarf-runs).")


def fail(err: Exception, code: int = 2) -> None:
    typer.echo(f"error: {err}", err=True)
    raise typer.Exit(code)


@app.callback(invoke_without_command=True)
def _root(ctx: typer.Context, workspace: Optional[Path] = WorkspaceOpt,
          version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    """Open the TUI when no command is given."""
    if version:
        from engine import __version__
        typer.echo(f"tarf-tui {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        from .app import run_app  # Textual is imported only here
        try:
            run_app(workspace)
        except TarfError as e:
            fail(e)


@app.command("cases")
def cases_cmd(as_json: bool = typer.Option(False, "--json", help="A JSON list of objects."),
              layers: int = typer.Option(3, "--layers", help="2: Table 2's eight cases; 3: all 27.")):
    """The paper's task cases (Table 4), with categories; impractical ones flagged."""
    from engine.cases import cases_for

    try:
        rows = cases_for(layers)
    except TarfError as e:
        fail(e)
    if as_json:
        typer.echo(json.dumps([c.to_dict() for c in rows], indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    from rich import box

    t = Table(title=f"Task cases ({layers} label layers)", box=box.SIMPLE_HEAD,
              caption="L_D: level the request names; L_M: model output; L_T: target concept; * the paper's main four")
    t.add_column("No.", justify="right", no_wrap=True, min_width=3)
    for col in ("L_D", "L_M", "L_T"):
        t.add_column(col, no_wrap=True, min_width=10)
    t.add_column("category", no_wrap=True, min_width=24)
    style = {"all-matched": "green", "target-mismatch": "cyan", "model-mismatch": "magenta",
             "data-mismatch": "yellow", "impractical": "red dim"}
    for c in rows:
        label = "IMPRACTICAL (L_D > L_T)" if not c.practical else c.category + (" *" if c.main else "")
        t.add_row(str(c.no), c.forget_level, c.model_level, c.target_level, label,
                  style=style.get(c.category))
    Console().print(t)


@app.command("datasets")
def datasets_cmd(as_json: bool = typer.Option(False, "--json"),
                 data_root: Optional[str] = typer.Option(None, "--data-root", help="Where CIFAR folders / the npz file are.")):
    """Datasets with availability and sizes."""
    from engine.datasets import DATASETS, default_data_root

    rows = []
    for name, info in DATASETS.items():
        ok, where = info.locate(data_root)
        sizes = {"synthetic": "3600 train / 1224 test, 16x16, 12 classes",
                 "cifar10": "50000 / 10000, 32x32, 10 classes", "cifar100": "50000 / 10000, 32x32, 100 classes",
                 "npz": "as in the file"}.get(name, "")
        rows.append({"name": name, "available": ok, "where": where, "sizes": sizes,
                     "hierarchy": info.default_hierarchy, "description": info.description})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    typer.echo(f"data root: {data_root or default_data_root()}")
    for r in rows:
        mark = "ready  " if r["available"] else "missing"
        typer.echo(f"{r['name']:<10} {mark} {r['sizes']:<42} {r['where']}")


@app.command("methods")
def methods_cmd(as_json: bool = typer.Option(False, "--json")):
    """Unlearning methods with their parameters and defaults."""
    from engine.methods.params import CATALOG, param_fields

    rows = [{"name": n, "title": i.title, "description": i.description,
             "params": param_fields(n), "dataset_defaults": {k: dict(v) for k, v in i.dataset_defaults.items()}}
            for n, i in CATALOG.items()]
    if as_json:
        typer.echo(json.dumps(rows, indent=1, default=str))
        return
    for r in rows:
        typer.echo(f"{r['name']:<10} {r['title']:<10} {r['description']}")
        for p in r["params"]:
            typer.echo(f"    {p['name']:<18} {p['type']:<6} = {p['default']!s:<12} {p['help']}")


# headless and runs live in their own modules (no Textual, no torch); registered here.
from .headless import headless_cmd  # noqa: E402
from .runs_cli import runs_app  # noqa: E402

app.command("headless")(headless_cmd)
app.add_typer(runs_app, name="runs")


def main() -> None:
    try:
        app()
    except TarfError as e:  # a library error escaped a command: still one line
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
