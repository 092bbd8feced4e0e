"""``tarf-tui headless``: run one experiment or a grid, print the comparison table, exit.

Output contract: the table (in ``--format``) is the only thing on stdout; progress goes to
stderr (rich progress bars on a terminal, plain timestamped lines otherwise). Exit codes: 0 every
run finished, 1 some run failed, diverged or was killed, 2 bad input (nothing started),
130 interrupted (Ctrl-C / SIGTERM: the engines started here are cancelled and marked killed).

``run_headless`` holds the logic and needs no terminal; ``headless_cmd`` is the typer command
(registered in ``cli.py``). Never imports textual, plotext or torch.

``TARF_ENGINE_CMD`` (for tests): the engine command line to use instead of
``python -m engine``, e.g. ``TARF_ENGINE_CMD="python tests/fake_engine.py"``.
"""

from __future__ import annotations

import json
import os
import shlex
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
from engine.store import TERMINAL, Store, Workspace
from engine.task import check

from . import compare
from .experiment import REFERENCE, describe, expand, load_grid, plan
from .launcher import ENGINE_PATH, Launcher, LocalExecutor, Pool

ENGINE_CMD_ENV = "TARF_ENGINE_CMD"
CANCEL_TIMEOUT_S = 5.0  # SIGTERM -> SIGKILL grace when interrupted
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def engine_cmd_from_env() -> list[str] | None:
    raw = os.environ.get(ENGINE_CMD_ENV, "").strip()
    return shlex.split(raw) if raw else None


# ---- progress ------------------------------------------------------------------------------
class PlainProgress:
    """One line per event, for a stderr that is not a terminal (logs, CI, pipes)."""

    def __init__(self, stream: TextIO, total: int):
        self.stream, self.total, self.done = stream, total, 0
        self._epochs: dict[int, int] = {}
        self._pre: dict[int, tuple[str, int]] = {}

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

    def ended(self, rid: int, desc: str, status: str, detail: str) -> None:
        self.done += 1
        self._line(f"run {rid} {status} ({self.done}/{self.total}): {desc}"
                   + (f"; {detail}" if detail else ""))

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

    def ended(self, rid: int, desc: str, status: str, detail: str) -> None:
        if rid in self.tasks:
            self.progress.remove_task(self.tasks.pop(rid))
        self.progress.advance(self.overall)
        self.note(f"run {rid} {status}: {desc}" + (f"; {detail}" if detail else ""))

    def close(self) -> None:
        self.progress.stop()


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
    new_ids: list[int]  # the runs started by this invocation
    statuses: dict[int, str] = field(default_factory=dict)
    output: str = ""  # what went to stdout


def _planned_epochs(spec: RunSpec) -> int | None:
    """Epoch rows the run will write, when known without data (None for Retrained, whose
    count is the dataset's recipe)."""
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


def run_headless(options: Mapping[str, Any], *, sets: Iterable[str] = (),
                 grid_file: str | os.PathLike | None = None,
                 workspace: str | os.PathLike | None = None, workers: int = 1,
                 rerun: bool = False, fmt: str = "table", download: bool = False,
                 engine_cmd: list[str] | None = None, out: TextIO | None = None,
                 err: TextIO | None = None, poll_s: float = 0.2,
                 rich_progress: bool | None = None, handle_sigterm: bool = True) -> HeadlessResult:
    """Validate, submit, run (``workers`` engines at once) and print the table.

    ``options``: grid keys (see ``experiment.KEYS``) -> raw value or None. Raises
    ``TarfError`` on bad input before anything starts. A finished run of an identical spec is
    reused unless ``rerun``."""
    out = out or sys.stdout
    err = err or sys.stderr
    if fmt not in compare.FORMATS:
        raise UnknownName("format", fmt, compare.FORMATS)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InvalidSpec(f"--workers must be an integer >= 1, got {workers!r}")
    grid = load_grid(grid_file) if grid_file else None
    exp = expand(options, grid, sets, validate=_downloading_check(err) if download else check)
    for w in exp.warnings:
        err.write(f"warning: {w}\n")
    specs = exp.specs
    deps = plan(specs)

    ws = Workspace(workspace)
    store = ws.store()  # DamagedFile (exit 2) on a file that is not ours; nothing written
    try:
        return _run(store, specs, deps, exp.notes, workers=workers, rerun=rerun, fmt=fmt,
                    engine_cmd=engine_cmd if engine_cmd is not None else engine_cmd_from_env(),
                    out=out, err=err, poll_s=poll_s, rich_progress=rich_progress,
                    handle_sigterm=handle_sigterm)
    finally:
        store.close()


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt()


def _run(store: Store, specs: list[RunSpec], deps: dict[int, set[int]], notes: list[str], *,
         workers: int, rerun: bool, fmt: str, engine_cmd: list[str] | None, out: TextIO,
         err: TextIO, poll_s: float, rich_progress: bool | None,
         handle_sigterm: bool) -> HeadlessResult:
    launcher = Launcher(store, LocalExecutor(store.path, engine_cmd))
    ids: list[int] = []
    new: list[int] = []  # indices into specs
    new_ids: list[int] = []
    progress = None
    old_term = None
    if handle_sigterm and hasattr(signal, "SIGTERM"):
        try:
            old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not the main thread
            old_term = None
    try:
        for i, spec in enumerate(specs):
            done = None if rerun else store.find_finished(spec.hash())
            if done is not None:
                ids.append(int(done["id"]))
            else:
                ids.append(launcher.submit(spec))
                new.append(i)
                new_ids.append(ids[-1])
        for n in notes:
            err.write(f"{n}\n")
        reused = len(specs) - len(new)
        err.write(f"{len(specs)} runs: {len(new)} to run"
                  + (f", {reused} reused (already finished; --rerun runs them again)" if reused else "")
                  + f"; workspace {store.path.parent}\n")
        err.flush()

        desc = {ids[i]: describe(specs[i]) for i in range(len(specs))}
        total_epochs = {ids[i]: _planned_epochs(specs[i]) for i in new}
        waiting = list(new)
        pool = Pool(launcher, workers)
        progress = make_progress(err, len(new), rich_progress)
        announced: set[int] = set()
        ended: set[int] = set()
        while True:
            statuses = store.statuses(ids)
            for i in list(waiting):
                if all(statuses.get(ids[d]) in TERMINAL for d in deps[i]):
                    pool.add(ids[i])
                    waiting.remove(i)
            pool.tick()
            statuses = store.statuses(new_ids)
            for rid in new_ids:
                s = statuses.get(rid)
                if s == "running" and rid not in announced:
                    announced.add(rid)
                    progress.started(rid, desc[rid], total_epochs[rid])
                if s == "running":
                    n, total = len(store.epochs(rid)), total_epochs[rid]
                    pre = pretrain_state(store.get_run(rid)) if n == 0 else None
                    if pre is not None:  # the shared original model is being trained first
                        progress.pretrain(rid, *pre)
                    else:
                        progress.epoch(rid, min(n, total) if total else n, total)
                if s in TERMINAL and rid not in ended:
                    ended.add(rid)
                    progress.ended(rid, desc[rid], s, _detail(store.get_run(rid)))
            if not waiting and len(ended) == len(new_ids):
                break
            time.sleep(poll_s)
    except KeyboardInterrupt:
        prev_int = signal.getsignal(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not stop the cleanup
        try:
            if progress is not None:
                progress.close()
            live = [r for r, s in store.statuses(new_ids).items() if s not in TERMINAL]
            err.write(f"interrupted: cancelling {len(live)} runs\n")
            err.flush()
            final = launcher.cancel_many(live, timeout=CANCEL_TIMEOUT_S) if live else {}
            killed = sum(1 for s in final.values() if s == "killed")
            err.write(f"{killed} runs marked killed\n")
            err.flush()
        finally:
            signal.signal(signal.SIGINT, prev_int)
        return HeadlessResult(EXIT_INTERRUPTED, ids, new_ids, store.statuses(ids))
    finally:
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    progress.close()

    statuses = store.statuses(ids)
    rows = [store.get_run(r) for r in dict.fromkeys(ids)]
    text = compare.render(compare.build([r for r in rows if r]), fmt,
                          color=fmt == "table" and out.isatty() if hasattr(out, "isatty") else False)
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
    return HeadlessResult(EXIT_FAILED if bad else EXIT_OK, ids, new_ids, statuses, text)


def pretrain_state(run: dict | None, tail_bytes: int = 8192) -> tuple[str, int, int | None] | None:
    """(kind, epoch, epochs) of the last ``pretrain`` event in a run's engine log, or None.

    The engine prints one JSON line per epoch while it trains the original model (or the
    Retrained reference) before any epoch row exists; reading the log's tail shows that phase
    instead of a bar stuck at 0. A missing or unreadable log is simply no information."""
    path = (run or {}).get("log_path")
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - tail_bytes))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        if '"pretrain"' not in line:
            continue
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("event") == "pretrain" and isinstance(ev.get("epoch"), int):
            epochs = ev.get("epochs")
            return str(ev.get("kind") or "original"), ev["epoch"], epochs if isinstance(epochs, int) else None
    return None


def _detail(run: dict | None) -> str:
    if not run:
        return ""
    if run.get("status") == "finished":
        parts = [f"{k}={run[k]:.1f}%" for k in ("ua", "ra", "ta", "gap")
                 if run.get(k) is not None]
        if run.get("rte_s") is not None:
            parts.append(f"{run['rte_s']:.1f} s")
        return " ".join(parts)
    return run.get("error") or ""


# ---- the typer command ---------------------------------------------------------------------
def _o(name: str, metavar: str, help: str):
    return typer.Option(None, name, help=help, show_default=False, metavar=metavar)


def headless_cmd(
    ctx: typer.Context,
    dataset: Optional[str] = _o("--dataset", "NAME[,NAME]", help="Dataset(s): synthetic (default), cifar10, cifar100, npz."),
    data_root: Optional[str] = _o("--data-root", "PATH", help="Folder (cifar*) or file (npz) holding the data."),
    hierarchy: Optional[str] = _o("--hierarchy", "NAME|FILE[,..]", help="Built-in hierarchy name or JSON path (default: the dataset's)."),
    subsets: Optional[str] = _o("--subsets", "K[,K]", help="K subsets per class (0 = two layers); default 3."),
    case: Optional[str] = _o("--case", "N[,N]", help="Table 4 case number(s), e.g. 11 or 10,11,12,13; default 11."),
    target: Optional[str] = _o("--target", "NAME[,NAME]", help="Target concept at L_T (default: the paper's)."),
    forget: Optional[str] = _o("--forget", "NAME[+NAME][,..]", help="Forgetting nodes at L_D; a,b = two requests, a+b = one request forgetting both."),
    method: Optional[str] = _o("--method", "NAME[,NAME]|all", help="Method(s) or 'all' (default ft,ga,tarf); the Retrained reference is always added."),
    arch: Optional[str] = _o("--arch", "NAME[,NAME]", help="Model(s): smallcnn (default), resnet18, vgg19, wrn28-10, wrn16-4."),
    epochs: Optional[str] = _o("--epochs", "N[,N]", help="Unlearning epochs (default: each method's)."),
    lr: Optional[str] = _o("--lr", "X[,X]", help="Unlearning learning rate (default: each method's)."),
    batch_size: Optional[str] = _o("--batch-size", "N[,N]", help="Unlearning batch size (default 128)."),
    seed: Optional[str] = _o("--seed", "N[,N]", help="Seed(s), e.g. 0,1,2: the table shows mean and std over them."),
    device: Optional[str] = _o("--device", "DEV", help="auto (default), cpu, cuda, cuda:N."),
    per_class: Optional[str] = _o("--per-class", "N[,N]", help="Cut the training set to N images per class."),
    set_: Optional[list[str]] = typer.Option(None, "--set", metavar="M.P=V", help="method.param=value (repeatable), e.g. tarf.k=0.04.", show_default=False),
    grid: Optional[Path] = typer.Option(None, "--grid", metavar="FILE.toml", help="TOML file with the same keys; lists expand to a grid.", show_default=False),
    workers: int = typer.Option(1, "--workers", metavar="N", help="Engines running at once."),
    rerun: bool = typer.Option(False, "--rerun", help="Run specs that already finished again (default: reuse them)."),
    allow_impractical: bool = typer.Option(False, "--allow-impractical", help="Allow impractical cases (L_D coarser than L_T)."),
    download: bool = typer.Option(False, "--download", help="Download a missing CIFAR dataset first."),
    workspace: Optional[Path] = typer.Option(None, "--workspace", "-w", envvar="TARF_HOME", help="Folder holding tarf.db, logs and the model cache (default ./tarf-runs).", show_default=False),
    fmt: str = typer.Option("table", "--format", metavar="table|md|csv|json|latex", help="Output: table, md, csv, json or latex."),
) -> None:
    """Run one experiment or a grid and print the comparison table (stdout); progress on
    stderr. With no options: the embedded dataset, case 11 (target mismatch), Retrained, FT, GA
    and TARF. Exit 0 all finished, 1 a run failed, 2 bad input, 130 interrupted."""
    from .cli import fail

    if workspace is None:
        workspace = ctx.find_root().params.get("workspace")
    options = {"dataset": dataset, "data_root": data_root, "hierarchy": hierarchy,
               "subsets": subsets, "case": case, "target": target, "forget": forget,
               "method": method, "arch": arch, "epochs": epochs, "lr": lr,
               "batch_size": batch_size, "seed": seed, "device": device, "per_class": per_class,
               "allow_impractical": True if allow_impractical else None}
    try:
        res = run_headless(options, sets=set_ or (), grid_file=grid, workspace=workspace,
                           workers=workers, rerun=rerun, fmt=fmt, download=download)
    except TarfError as e:
        fail(e)
    except KeyboardInterrupt:  # during validation: nothing was started
        typer.echo("interrupted", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)
    raise typer.Exit(res.exit_code)
