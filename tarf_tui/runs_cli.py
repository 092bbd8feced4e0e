"""``tarf-tui runs``: list, show, compare, export, cancel, rm and resume runs of a workspace.

Every read goes through ``Launcher.list_runs`` / ``Launcher.get_run`` (which reap first), so a
run whose engine died is never shown as running. The logic lives in plain functions
(``list_rows``, ``show_data``, ``export_text``...) that tests call directly; the typer commands
open the workspace (``cli_common.open_launcher``: reads work on a read-only workspace, with a
notice; writes are refused, exit 2), call one function and print. Errors become exit codes in
``cli_common.errors_to_exit_codes``. Torch-free, no Textual.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Optional

import typer

from engine.errors import InvalidSpec, TarfError, UnknownName
from engine.store import ACTIVE, STATUSES, Store, parse_time

from . import compare
from .cli_common import WorkspaceOpt, errors_to_exit_codes, open_launcher, workspace_of
from .launcher import Launcher
from .options import method_name

runs_app = typer.Typer(name="runs", no_args_is_help=True, add_completion=False,
                       rich_markup_mode=None,
                       help="Inspect and manage the runs in the workspace database.")

LIST_KEYS = ("id", "status", "dataset", "case_no", "target", "forget", "method", "seed",
             "epochs", "pid", "ua", "ra", "ta", "mia", "gap", "rte_s", "epochs_done",
             "experiment", "label", "created_at", "started_at", "finished_at", "error")
EXPORT_FORMATS = ("csv", "json")


# ---- library -------------------------------------------------------------------------------
def _filters(status: Optional[str], method: Optional[str], case: Optional[int],
             dataset: Optional[str]) -> dict[str, Any]:
    f: dict[str, Any] = {}
    if status:
        ss = [s.strip() for s in status.split(",") if s.strip()]
        for s in ss:
            if s not in STATUSES:
                raise UnknownName("status", s, STATUSES)
        f["status"] = ss
    if method:
        f["method"] = method_name(method)
    if case is not None:
        f["case_no"] = case
    if dataset:
        f["dataset"] = dataset
    return f


def _epochs_done(store: Store, ids: Iterable[int]) -> dict[int, int]:
    ids = list(ids)
    if not ids:
        return {}
    rows = store.summary()
    want = set(ids)
    return {r["id"]: r["epochs_done"] for r in rows if r["id"] in want}


def list_rows(launcher: Launcher, **filters: Any) -> list[dict]:
    """Runs (newest first) as flat dicts with ``LIST_KEYS``."""
    runs = launcher.list_runs(**filters)
    done = _epochs_done(launcher.store, (r["id"] for r in runs))
    out = []
    for r in runs:
        d = {k: r.get(k) for k in LIST_KEYS}
        d["epochs_done"] = done.get(r["id"], 0)
        out.append(d)
    return out


def get_or_fail(launcher: Launcher, run_id: int) -> dict:
    run = launcher.get_run(run_id)
    if run is None:
        raise TarfError(f"no run {run_id} in {launcher.store.path}")
    return run


def duration_s(run: dict) -> float | None:
    a, b = parse_time(run.get("started_at")), parse_time(run.get("finished_at"))
    return None if a is None or b is None else round((b - a).total_seconds(), 3)


def show_data(launcher: Launcher, run_id: int) -> dict:
    """The run row (spec parsed, duration added) and its epochs."""
    run = dict(get_or_fail(launcher, run_id))
    run["duration_s"] = duration_s(run)
    run["epochs"] = launcher.store.epochs(run_id)
    return run


def export_records(launcher: Launcher, **filters: Any) -> list[dict]:
    """Every run (oldest first): its columns, spec, duration and epoch history."""
    runs = sorted(launcher.list_runs(**filters), key=lambda r: r["id"])
    out = []
    for r in runs:
        d = dict(r)
        d["duration_s"] = duration_s(r)
        d["epochs"] = launcher.store.epochs(r["id"])
        out.append(d)
    return out


def _flat_spec(spec: dict) -> dict:
    out = {}
    for k, v in (spec or {}).items():
        if k == "params":
            for pk, pv in sorted((v or {}).items()):
                out[f"spec.params.{pk}"] = pv
        elif k == "recipe":
            for rk, rv in sorted((v or {}).items()):
                out[f"spec.recipe.{rk}"] = rv
        elif isinstance(v, (list, tuple)):
            out[f"spec.{k}"] = ",".join(map(str, v))
        else:
            out[f"spec.{k}"] = v
    return out


def export_text(records: list[dict], fmt: str) -> str:
    if fmt not in EXPORT_FORMATS:
        raise UnknownName("export format", fmt, EXPORT_FORMATS)
    if fmt == "json":
        return json.dumps(records, indent=1, default=str) + "\n"
    rows = []
    for r in records:
        d = {k: v for k, v in r.items() if k not in ("spec", "extras", "epochs")}
        d["epochs_done"] = len(r.get("epochs") or [])
        d.update(_flat_spec(r.get("spec") or {}))
        d["extras"] = json.dumps(r.get("extras") or {}, sort_keys=True)
        rows.append(d)
    return compare.csv_text(rows)


def cancel_run(launcher: Launcher, run_id: int, timeout: float = 10.0) -> str:
    run = get_or_fail(launcher, run_id)
    if run["status"] not in ACTIVE:
        return run["status"]
    return launcher.cancel(run_id, timeout) or run["status"]


def remove_run(launcher: Launcher, run_id: int, force: bool = False) -> None:
    """Delete a run and its epochs. A queued run (no engine yet) is cancelled first; a running
    one only with ``force``."""
    run = get_or_fail(launcher, run_id)
    if run["status"] in ACTIVE:
        if run["status"] == "running" and not force:
            raise InvalidSpec(f"run {run_id} is {run['status']}; cancel it first "
                              f"(tarf-tui runs cancel {run_id}) or pass --force")
        launcher.cancel(run_id)
    launcher.store.delete_run(run_id)


# ---- commands ------------------------------------------------------------------------------
StatusOpt = typer.Option(None, "--status", help="Only these statuses (comma list).", show_default=False)
MethodOpt = typer.Option(None, "--method", help="Only this method (any case).", show_default=False)
CaseOpt = typer.Option(None, "--case", help="Only this case number.", show_default=False)
DatasetOpt = typer.Option(None, "--dataset", help="Only this dataset.", show_default=False)
RunIdArg = typer.Argument(..., help="Run id.")


def command(name: str):
    """Register a ``runs`` command with the shared error mapping."""
    def deco(fn):
        return runs_app.command(name)(errors_to_exit_codes(fn))
    return deco


def _pct(v: Any) -> str:
    return "" if v is None else f"{v:.2f}"


def print_list(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(show_lines=False)
    for c in ("id", "status", "dataset", "case", "method", "seed", "epochs", "UA", "RA", "TA",
              "MIA", "Gap", "RTE s", "started"):
        t.add_column(c, justify="right" if c in ("id", "UA", "RA", "TA", "MIA", "Gap", "RTE s") else "left")
    for r in rows:
        t.add_row(str(r["id"]), r["status"], r["dataset"] or "", str(r["case_no"]), r["method"] or "",
                  str(r["seed"]), str(r["epochs_done"]), *(_pct(r[k]) for k in ("ua", "ra", "ta", "mia", "gap")),
                  "" if r["rte_s"] is None else f"{r['rte_s']:.1f}", (r["started_at"] or "")[:19])
    Console(width=160 if not os.isatty(1) else None).print(t)


def print_show(d: dict) -> None:
    for k in ("id", "status", "label", "dataset", "case_no", "target", "forget", "method", "seed",
              "device", "pid", "host", "created_at", "started_at", "finished_at", "duration_s",
              "code_version", "torch_version", "python_version", "log_path", "error"):
        if d.get(k) not in (None, ""):
            typer.echo(f"{k:<15} {d[k]}")
    metrics = [f"{k}={_pct(d[k])}%" for k in ("ua", "ra", "ta", "mia", "gap") if d.get(k) is not None]
    if d.get("rte_s") is not None:
        metrics.append(f"rte={d['rte_s']:.2f}s")
    if metrics:
        typer.echo(f"{'metrics':<15} {' '.join(metrics)}")
    versions = (d.get("spec") or {}).get("versions") or {}
    if versions:  # part of the run's identity: another data or method version is another run
        typer.echo(f"{'versions':<15} " + " ".join(f"{k}={v}" for k, v in sorted(versions.items())))
    extras = d.get("extras") or {}
    if isinstance(extras, dict) and extras.get("mia_variants"):
        ref = extras.get("ref_mia_variants") or {}
        typer.echo(f"{'mia attacks':<15} " + " ".join(
            f"{k}={_pct(v)}%" + (f" (Retrained {_pct(ref[k])}%)" if isinstance(ref, dict) and k in ref else "")
            for k, v in extras["mia_variants"].items()))
    ident = extras.get("identification") if isinstance(extras, dict) else None
    if ident:
        names = ident.get("unit_names") or []
        name = lambda i: names[i] if i < len(names) else str(i)  # noqa: E731
        typer.echo(f"{'identified':<15} {ident['hits']}/{ident['n']}: excluded "
                   f"{', '.join(name(i) for i in ident['excluded']) or '-'}; hidden "
                   f"{', '.join(name(i) for i in ident['hidden']) or '-'}")
    typer.echo(f"{'spec':<15} {json.dumps(d['spec'], sort_keys=True)}")
    if d["epochs"]:
        typer.echo("epoch  phase     loss      UA      RA      TA   acc_f  acc_uf  seconds")
        for e in d["epochs"]:
            loss = "" if e["loss"] is None else f"{e['loss']:.4f}"
            typer.echo(f"{e['epoch']:>5}  {(e['phase'] or ''):<8} {loss:>6} "
                       + " ".join(f"{_pct(e[k]):>7}" for k in ("ua", "ra", "ta", "acc_f", "acc_uf"))
                       + f"  {'' if e['seconds'] is None else format(e['seconds'], '.2f'):>7}")


def write_output(text: str, output: Optional[Path]) -> None:
    """``text`` on stdout, or into ``output`` (one line on stderr says where)."""
    if output is None:
        typer.echo(text, nl=not text.endswith("\n"))
        return
    try:
        output.write_text(text)
    except OSError as e:
        raise TarfError(f"cannot write {output}: {e.strerror or e}") from None
    typer.echo(f"wrote {output}", err=True)


@command("list")
def list_cmd(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="A JSON list of objects."),
             status: Optional[str] = StatusOpt, method: Optional[str] = MethodOpt,
             case: Optional[int] = CaseOpt, dataset: Optional[str] = DatasetOpt,
             limit: Optional[int] = typer.Option(None, "--limit", help="At most N runs (newest).", show_default=False),
             workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Runs, newest first (dead engines are marked failed first)."""
    with open_launcher(workspace_of(ctx, workspace)) as la:
        rows = list_rows(la, **_filters(status, method, case, dataset), **({"limit": limit} if limit else {}))
    typer.echo(json.dumps(rows, indent=1, default=str)) if as_json else print_list(rows)


@command("show")
def show_cmd(ctx: typer.Context, run_id: int = RunIdArg,
             as_json: bool = typer.Option(False, "--json", help="One JSON object."),
             workspace: Optional[Path] = WorkspaceOpt) -> None:
    """One run: spec, final metrics, every epoch."""
    with open_launcher(workspace_of(ctx, workspace)) as la:
        d = show_data(la, run_id)
    typer.echo(json.dumps(d, indent=1, default=str)) if as_json else print_show(d)


@command("compare")
def compare_cmd(ctx: typer.Context, status: Optional[str] = StatusOpt, method: Optional[str] = MethodOpt,
                case: Optional[int] = CaseOpt, dataset: Optional[str] = DatasetOpt,
                experiment: Optional[str] = typer.Option(None, "--experiment", help="Only this experiment key.", show_default=False),
                view: str = typer.Option("blocks", "--view", help="blocks: one Table 1 per experiment; tasks: the paper's Table 1, one column group per task (case) of each dataset + model."),
                sort: Optional[str] = typer.Option(None, "--sort", help="Sort the rows by a column (ua, ra, ta, mia, gap, rte_s, identified, method); prefix - for descending.", show_default=False),
                only_changed: bool = typer.Option(False, "--only-changed", help="Hide the columns whose values are equal in every row."),
                fmt: str = typer.Option("table", "--format", help="table, md, csv, json or latex."),
                output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout.", show_default=False),
                workspace: Optional[Path] = WorkspaceOpt) -> None:
    """The paper's Table 1: methods by UA, RA, TA, MIA, Gap, RTE (unlearning seconds) and
    identified (TARF's hits / n); mean and std over seeds."""
    f = _filters(status, method, case, dataset) | ({"experiment": experiment} if experiment else {})
    with open_launcher(workspace_of(ctx, workspace)) as la:
        runs = la.list_runs(**f)
    v = compare.View(kind=view, sort=sort, only_changed=only_changed)
    write_output(compare.compare(runs, fmt, view=v, color=fmt == "table" and output is None and os.isatty(1)), output)


@command("export")
def export_cmd(ctx: typer.Context, fmt: str = typer.Option("csv", "--format", help="csv or json."),
               output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write here instead of stdout.", show_default=False),
               status: Optional[str] = StatusOpt, method: Optional[str] = MethodOpt,
               case: Optional[int] = CaseOpt, dataset: Optional[str] = DatasetOpt,
               workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Every run with its spec columns, times, duration and versions; JSON also carries each
    run's per-epoch history."""
    with open_launcher(workspace_of(ctx, workspace)) as la:
        text = export_text(export_records(la, **_filters(status, method, case, dataset)), fmt)
    write_output(text, output)


@command("cancel")
def cancel_cmd(ctx: typer.Context, run_id: int = RunIdArg,
               timeout: float = typer.Option(10.0, "--timeout", help="Seconds between SIGTERM and SIGKILL."),
               workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Stop a queued or running run (it becomes killed)."""
    with open_launcher(workspace_of(ctx, workspace), write=True) as la:
        before = get_or_fail(la, run_id)["status"]
        after = cancel_run(la, run_id, timeout)
    typer.echo(f"run {run_id} is {before}; nothing to cancel" if before not in ACTIVE
               else f"run {run_id}: {after}")


@command("rm")
def rm_cmd(ctx: typer.Context, run_id: int = RunIdArg,
           force: bool = typer.Option(False, "--force", help="Cancel it first when it is queued or running."),
           workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Delete a run and its epochs (a running one only with --force)."""
    with open_launcher(workspace_of(ctx, workspace), write=True) as la:
        remove_run(la, run_id, force)
    typer.echo(f"removed run {run_id}")


@command("resume")
def resume_cmd(ctx: typer.Context,
               run_ids: Optional[list[int]] = typer.Argument(None, help="Queued run ids (default: every queued run).", show_default=False),
               workers: int = typer.Option(1, "--workers", metavar="N", help="Engines running at once."),
               fmt: str = typer.Option("table", "--format", help="Output: table, md, csv, json or latex."),
               workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Start the runs left queued (e.g. by the TUI's "leave running & quit" or an interrupted
    headless) in dependency order, wait for them and print their table, like headless."""
    import sys

    from .headless import drive
    from .planner import Scheduler

    if fmt not in compare.FORMATS:
        raise UnknownName("format", fmt, compare.FORMATS)
    with open_launcher(workspace_of(ctx, workspace), write=True) as la:
        slurm = getattr(la.executor, "has_slurm_runs", None)
        # runs of a Slurm launch go back to Slurm, which schedules them itself
        sched = Scheduler(la, 100_000 if slurm is not None and slurm(("queued",)) else workers)
        res = drive(sched, resume=run_ids or [], fmt=fmt, out=sys.stdout, err=sys.stderr,
                    interrupt_cancels=not (slurm is not None and slurm()))
    raise typer.Exit(res.exit_code)


@command("sync")
def sync_cmd(ctx: typer.Context, workspace: Optional[Path] = WorkspaceOpt) -> None:
    """Bring the database up to date with the run folders of cluster runs
    (<workspace>/runs/*: events, heartbeats, final metrics) and with Slurm's job states.
    Idempotent: running it twice changes nothing."""
    from .slurm import sync_workspace

    with open_launcher(workspace_of(ctx, workspace), write=True) as la:
        rep = sync_workspace(la.store, la.executor)
    typer.echo(rep.summary())
    for line in rep.skipped:
        typer.echo(f"skipped {line}", err=True)
