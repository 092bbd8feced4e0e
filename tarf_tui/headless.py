"""``tarf-tui headless``: run one experiment or a grid, print the comparison table, exit.

Output contract: the table (in ``--format``) is the only thing on stdout; progress goes to
stderr (rich progress bars on a terminal, plain timestamped lines otherwise). Exit codes: 0 every
run finished, 1 some run failed, diverged or was killed, 2 bad input (nothing started),
130 interrupted (Ctrl-C / SIGTERM: the engines started here are cancelled and marked killed).
``--dry-run`` prints the plan (``planner.Plan.render``) on stdout and starts nothing.

``run_headless`` holds the logic and needs no terminal: it plans (``planner.make_plan``) and
hands the plan to ``drive``, which ``tarf-tui runs resume`` uses too; ``headless_cmd`` is the
typer command (registered in ``cli.py``). Never imports textual, plotext or torch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Optional, TextIO

import typer

from engine.errors import DataMissing, InvalidSpec, TarfError, UnknownName
from engine.spec import RunSpec
from engine.store import TERMINAL, Workspace
from engine.task import check

from . import compare
from .cli_common import (EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, WorkspaceOpt,
                         errors_to_exit_codes, workspace_of)
from .experiment import REFERENCE, describe, load_grid
from .launcher import ENGINE_PATH, Launcher, engine_cmd_from_env
from .logs import phase_text, pretrain_state
from .planner import Plan, Scheduler, make_plan, plan_specs

CANCEL_TIMEOUT_S = 5.0  # SIGTERM -> SIGKILL grace when interrupted


# ---- progress ------------------------------------------------------------------------------
class PlainProgress:
    """One line per event, for a stderr that is not a terminal (logs, CI, pipes)."""

    def __init__(self, stream: TextIO, total: int):
        self.stream, self.total, self.done = stream, total, 0
        self._epochs: dict[int, int] = {}
        self._pre: dict[int, Any] = {}
        self._t0 = time.monotonic()

    def _line(self, text: str) -> None:
        self.stream.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
        self.stream.flush()

    def note(self, text: str) -> None:
        self._line(text)

    def started(self, rid: int, desc: str, total_epochs: int | None) -> None:
        self._line(f"run {rid} started: {desc}")

    def epoch(self, rid: int, done: int, total: int | None) -> None:
        if done and self._epochs.get(rid) != done:
            self._epochs[rid] = done
            self._line(f"run {rid} epoch {done}" + (f"/{total}" if total else ""))

    def pretrain(self, rid: int, kind: str, epoch: int, epochs: int | None) -> None:
        key = (kind, epoch)
        if self._pre.get(rid) != key:
            self._pre[rid] = key
            self._line(f"run {rid} training the {kind} model: epoch {epoch}"
                       + (f"/{epochs}" if epochs else ""))

    def phase(self, rid: int, text: str) -> None:
        if self._pre.get(rid) != text:
            self._pre[rid] = text
            self._line(f"run {rid}: {text}")

    def ended(self, rid: int, desc: str, status: str, detail: str) -> None:
        self.done += 1
        self._line(f"run {rid} {status} ({self.done}/{self.total}): {desc}"
                   + (f"; {detail}" if detail else "")
                   + eta_text(time.monotonic() - self._t0, self.done, self.total))

    def close(self) -> None:
        pass


class RichProgress:
    """An overall bar (runs) and one bar per live run (its epochs), with ETA, on stderr."""

    def __init__(self, stream: TextIO, total: int):
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.console = Console(file=stream)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("eta"), TimeRemainingColumn(),
                                 console=self.console, transient=False)
        self.progress.start()
        self.overall = self.progress.add_task("runs", total=total)
        self.tasks: dict[int, Any] = {}
        self.descs: dict[int, str] = {}

    def note(self, text: str) -> None:
        self.progress.console.print(text, highlight=False, markup=False)

    def started(self, rid: int, desc: str, total_epochs: int | None) -> None:
        self.descs[rid] = f"  run {rid} {desc}"
        self.tasks[rid] = self.progress.add_task(self.descs[rid], total=total_epochs)

    def epoch(self, rid: int, done: int, total: int | None) -> None:
        if rid in self.tasks:
            self.progress.update(self.tasks[rid], completed=done, total=total,
                                 description=self.descs.get(rid, ""))

    def pretrain(self, rid: int, kind: str, epoch: int, epochs: int | None) -> None:
        if rid in self.tasks:
            self.progress.update(self.tasks[rid], completed=epoch, total=epochs,
                                 description=f"{self.descs.get(rid, '')} [{kind} model]")

    def phase(self, rid: int, text: str) -> None:
        if rid in self.tasks:
            self.progress.update(self.tasks[rid], description=f"{self.descs.get(rid, '')} [{text}]")

    def ended(self, rid: int, desc: str, status: str, detail: str) -> None:
        if rid in self.tasks:
            self.progress.remove_task(self.tasks.pop(rid))
        self.progress.advance(self.overall)
        self.note(f"run {rid} {status}: {desc}" + (f"; {detail}" if detail else ""))

    def close(self) -> None:
        self.progress.stop()


def eta_text(elapsed_s: float, done: int, total: int) -> str:
    """``"; eta 1m20s"`` for the runs left, from the mean time per run so far ("" when done)."""
    if done <= 0 or done >= total:
        return ""
    left = elapsed_s / done * (total - done)
    m, sec = divmod(int(round(left)), 60)
    return f"; eta {m}m{sec:02d}s" if m else f"; eta {sec}s"


def make_progress(stream: TextIO, total: int, rich: bool | None = None):
    if rich is None:
        rich = hasattr(stream, "isatty") and stream.isatty()
    return RichProgress(stream, total) if rich else PlainProgress(stream, total)


# ---- data download -------------------------------------------------------------------------
def _downloading_check(stream: TextIO) -> Callable[[RunSpec], str]:
    """``task.check`` that, on a missing dataset, downloads it once (in a subprocess: the
    download uses torchvision, which this process never imports) and checks again."""
    tried: set[tuple[str, str | None]] = set()

    def validate(spec: RunSpec) -> str:
        try:
            return check(spec)
        except DataMissing:
            key = (spec.dataset, spec.data_root)
            if key in tried:
                raise
            tried.add(key)
            stream.write(f"downloading {spec.dataset} ...\n")
            stream.flush()
            code = ("import sys; from engine.datasets import load_dataset; "
                    "load_dataset(sys.argv[1], sys.argv[2] or None, download=True)")
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(
                p for p in (ENGINE_PATH, os.environ.get("PYTHONPATH", "")) if p)}
            r = subprocess.run([sys.executable, "-c", code, spec.dataset, spec.data_root or ""],
                               stdout=stream, stderr=stream, env=env, check=False)
            if r.returncode != 0:
                raise DataMissing(f"download of {spec.dataset} failed (exit {r.returncode}); "
                                  "see the lines above") from None
            return check(spec)

    return validate


# ---- the command's logic -------------------------------------------------------------------
@dataclass
class HeadlessResult:
    exit_code: int
    run_ids: list[int]  # every run of the plan, in plan order (reused ones included)
    new_ids: list[int]  # the runs started by this invocation (taken-over queued ones too)
    statuses: dict[int, str] = field(default_factory=dict)
    output: str = ""  # what went to stdout
    plan: Plan | None = None


def planned_epochs(spec: RunSpec) -> int | None:
    """Epoch rows the run will write, when known without data: the method's epochs; for
    Retrained the recipe epochs when the spec gives them (else the dataset's recipe, which
    the engine's log tells once it starts)."""
    if spec.method == REFERENCE:
        return spec.recipe.epochs or None
    try:
        from engine.cases import get_case
        from engine.methods.params import resolve_params

        p = resolve_params(spec.method, spec.params, spec.dataset, spec.epochs, spec.lr,
                           get_case(spec.case).category)
        return int(p.epochs)
    except TarfError:
        return None


def _recipe_epochs_of(run: dict | None) -> int | None:
    from .logs import last_event

    ev = last_event((run or {}).get("log_path"), "task")
    v = (ev or {}).get("recipe_epochs")
    return v if isinstance(v, int) else None


def run_headless(options: Mapping[str, Any], *, sets: Iterable[str] = (),
                 grid_file: str | os.PathLike | None = None,
                 workspace: str | os.PathLike | None = None, workers: int = 1,
                 rerun: bool = False, fmt: str = "table", download: bool = False,
                 dry_run: bool = False, engine_cmd: list[str] | None = None,
                 out: TextIO | None = None, err: TextIO | None = None, poll_s: float = 0.2,
                 rich_progress: bool | None = None, handle_sigterm: bool = True,
                 executor: str = "local", slurm: Mapping[str, Any] | None = None) -> HeadlessResult:
    """Validate, plan, run (``workers`` engines at once) and print the table; with
    ``dry_run`` print the plan instead and start nothing.

    ``executor``: ``local`` (subprocesses) or ``slurm`` (one job array per batch of ready
    runs, ``tarf_tui/slurm.py``); ``slurm``: Slurm settings from the command line (None
    values skipped) over ``<workspace>/slurm.toml`` and the grid's ``[slurm]`` table. With
    Slurm, ``workers`` > 1 caps the runs at once (``max_running``) unless ``slurm`` sets it,
    and an interrupt leaves the submitted runs to Slurm instead of cancelling them.

    ``options``: grid keys (see ``experiment.KEYS``) -> raw value or None. Raises
    ``TarfError`` on bad input before anything starts. A finished run of an identical spec is
    reused unless ``rerun``."""
    out = out or sys.stdout
    err = err or sys.stderr
    if fmt not in compare.FORMATS:
        raise UnknownName("format", fmt, compare.FORMATS)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidSpec(f"--workers must be an integer >= 1, got {workers!r}")
    from .slurm import EXECUTORS, check_executor, workspace_executor

    if executor not in EXECUTORS:
        raise UnknownName("executor", executor, EXECUTORS)
    slurm = {k: v for k, v in (slurm or {}).items() if v not in (None, (), [])}
    if slurm and executor != "slurm":
        raise InvalidSpec(f"Slurm settings ({', '.join(sorted(slurm))}) need --executor slurm")
    if executor == "slurm" and workers > 1:
        slurm.setdefault("max_running", workers)
    if not dry_run:  # before the workspace is written
        check_executor(executor, Workspace(workspace).path, grid_file, slurm)
    grid = load_grid(grid_file) if grid_file else None
    validate = _downloading_check(err) if download and not dry_run else check
    ws = Workspace(workspace)
    if dry_run:  # reads the workspace when it has one; writes nothing
        store = ws.open(write=False) if (ws.path / "tarf.db").exists() or ws.path.is_file() else None
        try:
            plan = make_plan(options, grid=grid, sets=sets, store=store, rerun=rerun,
                             validate=validate)
        finally:
            if store is not None:
                store.close()
        for w in plan.warnings:
            err.write(f"warning: {w}\n")
        text = plan.render()
        out.write(text)
        out.flush()
        return HeadlessResult(EXIT_OK, [s.run_id for s in plan.steps if s.run_id is not None],
                              [], output=text, plan=plan)
    plan = make_plan(options, grid=grid, sets=sets, rerun=rerun, validate=validate)
    store = ws.open(write=True)  # one line (exit 2) on a read-only or damaged workspace
    try:
        plan = plan_specs(plan.specs, store, rerun, plan.notes, plan.warnings)  # + reuse
        for w in plan.warnings:
            err.write(f"warning: {w}\n")
        cmd = engine_cmd if engine_cmd is not None else engine_cmd_from_env()
        ex = workspace_executor(store, executor, engine_cmd=cmd, grid_file=grid_file,
                                options=slurm)
        # Slurm is the scheduler there (max_running = the array's %M): no cap here
        sched = Scheduler(Launcher(store, ex), workers if executor == "local" else 100_000)
        return drive(sched, plan=plan, fmt=fmt, out=out, err=err, poll_s=poll_s,
                     rich_progress=rich_progress, handle_sigterm=handle_sigterm,
                     interrupt_cancels=executor == "local")
    finally:
        store.close()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt()


def drive(sched: Scheduler, *, plan: Plan | None = None, resume: Iterable[int] | None = None,
          fmt: str = "table", out: TextIO, err: TextIO, poll_s: float = 0.2,
          rich_progress: bool | None = None, handle_sigterm: bool = True,
          interrupt_cancels: bool = True) -> HeadlessResult:
    """Submit ``plan`` (or resume the queued runs ``resume``; an empty list = all of them),
    run until every run is terminal while showing progress on ``err``, print the table on
    ``out``. Ctrl-C / SIGTERM cancels the runs started here (exit 130); with
    ``interrupt_cancels`` False (a cluster executor) it leaves them running there and the
    unsubmitted ones queued for the next ``resume``."""
    store = sched.store
    progress = None
    old_term = None
    if handle_sigterm and hasattr(signal, "SIGTERM"):
        try:
            old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not the main thread
            old_term = None
    ids: list[int] = []
    new_ids: list[int] = []
    try:
        if plan is not None:
            for n in plan.notes:
                err.write(f"{n}\n")
            err.write(f"{plan.summary()}; workspace {store.path.parent}\n")
            err.flush()
            # joined runs still queued are taken over by the scheduler: they are ours to show,
            # count and cancel; joined runs already running belong to whoever started them
            left = store.statuses(st.run_id for st in plan.joined)
            ids = sched.submit(plan)
            new_ids = [rid for st, rid in zip(plan.steps, ids)
                       if st.action == "start" or (st.action == "join" and left.get(rid) == "queued")]
            specs = {rid: st.spec for st, rid in zip(plan.steps, ids)}
        else:
            ids = new_ids = sched.resume(list(resume) or None if resume is not None else None)
            specs = {}
            for rid in ids:
                row = store.get_run(rid) or {}
                try:
                    specs[rid] = RunSpec.from_dict(row.get("spec") or {})
                except TarfError:
                    pass
            err.write(f"{len(ids)} queued runs resumed; workspace {store.path.parent}\n")
            err.flush()
        desc = {rid: describe(s) for rid, s in specs.items()}
        total_epochs = {rid: planned_epochs(specs[rid]) if rid in specs else None for rid in new_ids}
        progress = make_progress(err, len(new_ids), rich_progress)
        announced: set[int] = set()
        ended: set[int] = set()
        while True:
            sched.tick()
            statuses = store.statuses(new_ids)
            for rid in new_ids:
                s = statuses.get(rid)
                if s == "running" and rid not in announced:
                    announced.add(rid)
                    progress.started(rid, desc.get(rid, f"run {rid}"), total_epochs[rid])
                if s == "running":
                    _show(progress, store, rid, total_epochs)
                if (s in TERMINAL or s is None) and rid not in ended:
                    ended.add(rid)
                    progress.ended(rid, desc.get(rid, f"run {rid}"), s or "deleted",
                                   _detail(store.get_run(rid)))
            if len(ended) == len(new_ids) and sched.is_done(ids):
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        prev_int = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        try:
            if progress is not None:
                progress.close()
            live = [r for r, s in store.statuses(new_ids).items() if s not in TERMINAL]
            if not interrupt_cancels:
                held = sched.release()
                err.write(f"interrupted: {len(live) - len(held)} runs left to the cluster, "
                          f"{len(held)} not yet submitted stay queued (`tarf-tui runs sync` "
                          "follows them, `tarf-tui runs resume` submits the rest, "
                          "`tarf-tui runs cancel N` stops one)\n")
                err.flush()
                return HeadlessResult(EXIT_INTERRUPTED, ids, new_ids, store.statuses(ids), plan=plan)
            err.write(f"interrupted: cancelling {len(live)} runs\n")
            err.flush()
            final = sched.cancel(live, timeout=CANCEL_TIMEOUT_S) if live else {}
            killed = sum(1 for s in final.values() if s == "killed")
            err.write(f"{killed} runs marked killed\n")
            err.flush()
        finally:
            signal.signal(signal.SIGINT, prev_int)
        return HeadlessResult(EXIT_INTERRUPTED, ids, new_ids, store.statuses(ids), plan=plan)
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    progress.close()

    statuses = store.statuses(ids)
    rows = [store.get_run(r) for r in dict.fromkeys(ids)]
    color = fmt == "table" and out.isatty() if hasattr(out, "isatty") else False
    text = compare.render(compare.build([r for r in rows if r]), fmt, color=color)
    out.write(text if text.endswith("\n") else text + "\n")
    out.flush()
    bad = {r: s for r, s in statuses.items() if r in new_ids and s != "finished"}
    counts: dict[str, int] = {}
    for s in statuses.values():
        counts[s] = counts.get(s, 0) + 1
    err.write("done: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + "\n")
    for rid, s in bad.items():
        run = store.get_run(rid) or {}
        err.write(f"run {rid} {s}: {run.get('error') or ''} (log: {run.get('log_path')})\n")
    err.flush()
    return HeadlessResult(EXIT_FAILED if bad else EXIT_OK, ids, new_ids, statuses, text, plan)


def _show(progress: Any, store: Any, rid: int, total_epochs: dict[int, int | None]) -> None:
    """One running run's progress: its epochs with their total; before the first epoch row,
    the original model's / Retrained's training epochs or what the engine is preparing."""
    n = len(store.epochs(rid))
    if n:
        total = total_epochs.get(rid)
        if total is None:  # Retrained at the dataset's recipe: the engine's log says how many
            total = total_epochs[rid] = _recipe_epochs_of(store.get_run(rid))
        # Retrained writes one row per epoch from 0; methods write epoch 0 (before the first
        # step) and then one per epoch: the count shown is the epochs done
        done = min(n, total) if total else n
        progress.epoch(rid, done, total)
        return
    run = store.get_run(rid)
    pre = pretrain_state(run)
    text = phase_text(run)
    if pre is not None and text is not None and "epoch" in text:
        progress.pretrain(rid, *pre)
    elif text is not None:
        progress.phase(rid, text)


def _detail(run: dict | None) -> str:
    if not run:
        return ""
    if run.get("status") == "finished":
        parts = [f"{k}={run[k]:.1f}%" for k in ("ua", "ra", "ta", "gap")
                 if run.get(k) is not None]
        if run.get("rte_s") is not None:
            parts.append(f"RTE {run['rte_s']:.1f} s")
        return " ".join(parts)
    return run.get("error") or ""


# ---- the typer command ---------------------------------------------------------------------
def _o(name: str, metavar: str, help: str):
    return typer.Option(None, name, help=help, show_default=False, metavar=metavar)


@errors_to_exit_codes
def headless_cmd(
    ctx: typer.Context,
    dataset: Optional[str] = _o("--dataset", "NAME[,NAME]", help="Dataset(s): synthetic (default), cifar10, cifar100, npz."),
    data_root: Optional[str] = _o("--data-root", "PATH", help="Folder (cifar*) or file (npz) holding the data."),
    hierarchy: Optional[str] = _o("--hierarchy", "NAME|FILE[,..]", help="Built-in hierarchy name or JSON path (default: the dataset's)."),
    subsets: Optional[str] = _o("--subsets", "K[,K]", help="K subsets per class (0 = two layers); default 3."),
    case: Optional[str] = _o("--case", "N[,N]", help="Table 4 case number(s), e.g. 11 or 10,11,12,13; default 11."),
    target: Optional[str] = _o("--target", "NAME[,NAME]", help="Target concept at L_T (default: the paper's)."),
    forget: Optional[str] = _o("--forget", "NAME[+NAME][,..]", help="Forgetting nodes at L_D; a,b = two requests, a+b = one request forgetting both."),
    method: Optional[str] = _o("--method", "NAME[,NAME]|all", help="Method(s) or 'all' (default ft,ga,tarf; any case); the Retrained reference is always added."),
    arch: Optional[str] = _o("--arch", "NAME[,NAME]", help="Model(s): smallcnn (default), resnet18, vgg19, wrn28-10, wrn16-4."),
    epochs: Optional[str] = _o("--epochs", "N[,N]", help="Unlearning epochs (default: each method's); the original model and Retrained follow --recipe-epochs."),
    recipe_epochs: Optional[str] = _o("--recipe-epochs", "N[,N]", help="Epochs of the original model and of Retrained (default: the dataset's recipe, 10 embedded, 30 CIFAR)."),
    lr: Optional[str] = _o("--lr", "X[,X]", help="Unlearning learning rate (default: each method's)."),
    batch_size: Optional[str] = _o("--batch-size", "N[,N]", help="Unlearning batch size (default 128)."),
    seed: Optional[str] = _o("--seed", "N[,N]|A-B", help="Seed(s), e.g. 0,1,2 or 0-2: the table shows mean and std over them."),
    device: Optional[str] = _o("--device", "DEV", help="auto (default), cpu, cuda, cuda:N."),
    per_class: Optional[str] = _o("--per-class", "N[,N]", help="Cut the training set to N images per class."),
    set_: Optional[list[str]] = typer.Option(None, "--set", metavar="M.P=V", help="method.param=value (repeatable), e.g. tarf.k=0.04; the method must be among those run.", show_default=False),
    grid: Optional[Path] = typer.Option(None, "--grid", metavar="FILE.toml", help="TOML file with the same keys; lists expand to a grid.", show_default=False),
    workers: int = typer.Option(1, "--workers", metavar="N", help="Engines running at once."),
    rerun: bool = typer.Option(False, "--rerun", help="Run specs that already finished again (default: reuse them)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan (runs to start, runs reused) and start nothing."),
    allow_impractical: bool = typer.Option(False, "--allow-impractical", help="Allow impractical cases (L_D coarser than L_T)."),
    download: bool = typer.Option(False, "--download", help="Download a missing CIFAR dataset first."),
    workspace: Optional[Path] = WorkspaceOpt,
    fmt: str = typer.Option("table", "--format", metavar="table|md|csv|json|latex", help="Output: table, md, csv, json or latex."),
    executor: str = typer.Option("local", "--executor", metavar="local|slurm", help="Where engines run: local subprocesses, or Slurm job arrays (settings: <workspace>/slurm.toml, the grid's [slurm] table, the options below)."),
    partition: Optional[str] = typer.Option(None, "--partition", metavar="NAME", help="Slurm partition.", show_default=False),
    gpus: Optional[int] = typer.Option(None, "--gpus", metavar="N", help="Slurm: GPUs per run.", show_default=False),
    cpus: Optional[int] = typer.Option(None, "--cpus", metavar="N", help="Slurm: CPU cores per run (default 1).", show_default=False),
    mem: Optional[str] = typer.Option(None, "--mem", metavar="SIZE", help="Slurm: memory per run, e.g. 8G.", show_default=False),
    time_limit: Optional[str] = typer.Option(None, "--time", metavar="T", help="Slurm: time limit per run, e.g. 2:00:00.", show_default=False),
    max_running: Optional[int] = typer.Option(None, "--max-running", metavar="M", help="Slurm: runs of an array at once (%M; default: --workers when > 1, else no cap).", show_default=False),
    sbatch_arg: Optional[list[str]] = typer.Option(None, "--sbatch-arg", metavar="ARG", help="Slurm: one more sbatch argument (repeatable), e.g. --sbatch-arg=--account=lab.", show_default=False),
) -> None:
    """Run one experiment or a grid and print the comparison table (stdout); progress on
    stderr. With no options: the embedded dataset, case 11 (target mismatch), Retrained, FT, GA
    and TARF. Exit 0 all finished, 1 a run failed, 2 bad input, 130 interrupted."""
    options = {"dataset": dataset, "data_root": data_root, "hierarchy": hierarchy,
               "subsets": subsets, "case": case, "target": target, "forget": forget,
               "method": method, "arch": arch, "epochs": epochs, "recipe_epochs": recipe_epochs,
               "lr": lr, "batch_size": batch_size, "seed": seed, "device": device,
               "per_class": per_class, "allow_impractical": True if allow_impractical else None}
    res = run_headless(options, sets=set_ or (), grid_file=grid,
                       workspace=workspace_of(ctx, workspace), workers=workers, rerun=rerun,
                       fmt=fmt, download=download, dry_run=dry_run, executor=executor,
                       slurm={"partition": partition, "gpus": gpus, "cpus": cpus, "mem": mem,
                              "time": time_limit, "max_running": max_running,
                              "sbatch_args": tuple(sbatch_arg or ())})
    raise typer.Exit(res.exit_code)
