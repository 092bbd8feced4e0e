"""The ``tarf-tui`` command. A thin shell (sqlite-utils' habit): each command parses its options
and calls one library function; ``cli_common`` holds the shared options and maps errors to exit
codes in one place (``errors_to_exit_codes``).

    tarf-tui [--workspace DIR]          the Textual app (imported lazily)
    tarf-tui headless [OPTIONS]         batch runs, no Textual import
    tarf-tui runs list|show|compare|export|cancel|rm|resume
    tarf-tui cases | datasets | methods
Never imports torch; imports textual only for the app itself. Import order: ``cli`` ->
``headless``, ``runs_cli`` -> ``cli_common`` (nothing imports ``cli``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from engine.errors import TarfError

from .cli_common import JsonOpt, WorkspaceOpt, errors_to_exit_codes
from .headless import headless_cmd
from .options import DATASET_SIZES
from .runs_cli import runs_app

app = typer.Typer(
    name="tarf-tui", no_args_is_help=False, add_completion=False, rich_markup_mode=None,
    help="Class-wise unlearning experiments when labels and target concepts do not coincide (TARF).",
    context_settings={"help_option_names": ["-h", "--help"]})



@app.callback(invoke_without_command=True)
@errors_to_exit_codes
def _root(ctx: typer.Context, workspace: Optional[Path] = WorkspaceOpt,
          version: bool = typer.Option(False, "--version", help="Print the version and exit.")):
    """Open the TUI when no command is given."""
    if version:
        from engine import __version__
        typer.echo(f"tarf-tui {__version__}")
        raise typer.Exit(0)
    if ctx.invoked_subcommand is None:
        from .app import run_app  # Textual is imported only here
        run_app(workspace)


@app.command("cases")
@errors_to_exit_codes
def cases_cmd(as_json: bool = JsonOpt,
              layers: int = typer.Option(3, "--layers", help="2: Table 2's eight cases; 3: all 27.")):
    """The paper's task cases (Table 4), with categories; impractical ones flagged."""
    from engine.cases import cases_for

    rows = cases_for(layers)
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
@errors_to_exit_codes
def datasets_cmd(as_json: bool = JsonOpt,
                 data_root: Optional[str] = typer.Option(None, "--data-root", help="Where CIFAR folders / the npz file are.")):
    """Datasets with availability and sizes."""
    from engine.datasets import DATASETS, default_data_root

    rows = []
    for name, info in DATASETS.items():
        ok, where = info.locate(data_root)
        rows.append({"name": name, "available": ok, "where": where,
                     "sizes": DATASET_SIZES.get(name, ""),
                     "hierarchy": info.default_hierarchy, "description": info.description})
    if as_json:
        typer.echo(json.dumps(rows, indent=1))
        return
    typer.echo(f"data root: {data_root or default_data_root()}")
    for r in rows:
        mark = "ready  " if r["available"] else "missing"
        typer.echo(f"{r['name']:<10} {mark} {r['sizes']:<42} {r['where']}")


@app.command("methods")
@errors_to_exit_codes
def methods_cmd(as_json: bool = JsonOpt,
                dataset: str = typer.Option("synthetic", "--dataset", help="Show the defaults that run on this dataset (synthetic, cifar10, cifar100, npz)."),
                case: int = typer.Option(11, "--case", help="... and this case (some defaults depend on the task category)."),
                method: Optional[str] = typer.Option(None, "--method", help="Only this method (any case).", show_default=False)):
    """Unlearning methods with their parameters and the defaults that actually run for the
    chosen dataset and case (override any with headless --set method.param=value)."""
    from .methods_info import method_rows

    rows = method_rows(dataset, case, method)
    if as_json:
        typer.echo(json.dumps(rows, indent=1, default=str))
        return
    typer.echo(f"defaults for dataset {dataset}, case {case} ({rows[0]['category'] if rows else ''})")
    for r in rows:
        typer.echo(f"{r['name']:<10} {r['title']:<10} {r['description']}")
        for p in r["params"]:
            mark = " *" if p["default"] != p["base_default"] else ""
            typer.echo(f"    {p['name']:<18} {p['type']:<6} = {p['default']!s:<12} {p['help']}{mark}")
    typer.echo("* differs from the method's generic default for this dataset or case")


app.command("headless")(headless_cmd)
app.add_typer(runs_app, name="runs")


def main() -> None:
    try:
        app()
    except TarfError as e:  # a library error escaped a command (a callback): still one line
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
