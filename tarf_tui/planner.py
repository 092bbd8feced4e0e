"""The one planner and scheduler behind ``tarf-tui headless``, the TUI and ``tarf-tui runs``.
Torch-free, no Textual, no terminal.

Planning (``make_plan`` / ``plan_specs``): options -> the grid (``experiment.expand``) -> one
``Step`` per spec, in run order, each with its ``action``:

- ``reuse``: a finished run of the same spec hash exists; it is shown, not run again (unless
  ``rerun``);
- ``join``: the same spec is already queued or running (another launch, another process); it
  is waited for, not duplicated;
- ``start``: a new queued row will be created.

and ``after``: the steps it waits for (``dependencies``). Nothing is written while planning, so
``headless --dry-run`` is ``make_plan(...).render()``.

Scheduling (``Scheduler``): ``submit(plan)`` creates the rows of the ``start`` steps; ``tick()``
(call it from a timer or a sleep loop) reaps dead engines, releases runs whose dependencies are
terminal and starts at most ``workers`` engines through a ``Launcher`` and its ``Executor``;
``cancel`` / ``cancel_all`` stop runs; ``resume`` adopts queued rows left by an earlier session
(the TUI's "leave running & quit", an interrupted headless) with their dependency order
recomputed; ``release`` forgets the pending runs without cancelling them (they stay queued for
the next ``resume``). The scheduler never assumes an engine is a local child: the executor
answers ``alive`` for its handles and ``adopt`` for rows it did not start.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from engine.errors import TarfError
from engine.spec import RunSpec
from engine.store import ACTIVE, TERMINAL, Store
from engine.task import check

from .experiment import DEFAULT_METHODS, dependencies, describe, expand
from .launcher import Executor, Launcher, LocalExecutor, Pool

ACTIONS = ("start", "reuse", "join")


# ---- the plan ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Step:
    index: int
    spec: RunSpec
    action: str  # one of ACTIONS
    run_id: int | None  # the existing row for reuse / join; None for start until submitted
    after: tuple[int, ...] = ()  # indices of the steps this one waits for

    @property
    def desc(self) -> str:
        return describe(self.spec)


@dataclass
class Plan:
    steps: list[Step]
    notes: list[str] = field(default_factory=list)  # one line per experiment
    warnings: list[str] = field(default_factory=list)

    def _with(self, action: str) -> list[Step]:
        return [s for s in self.steps if s.action == action]

    @property
    def to_start(self) -> list[Step]:
        return self._with("start")

    @property
    def reused(self) -> list[Step]:
        return self._with("reuse")

    @property
    def joined(self) -> list[Step]:
        return self._with("join")

    @property
    def specs(self) -> list[RunSpec]:
        return [s.spec for s in self.steps]

    def summary(self) -> str:
        """One line: how many runs, how many start, how many are reused or joined."""
        parts = [f"{len(self.to_start)} to run"]
        if self.reused:
            parts.append(f"{len(self.reused)} reused (already finished; --rerun runs them again)")
        if self.joined:
            parts.append(f"{len(self.joined)} already queued or running (waited for)")
        return f"{len(self.steps)} runs: " + ", ".join(parts)

    def render(self) -> str:
        """The plan as text, one line per run in run order (what ``--dry-run`` prints)."""
        lines = [*self.notes, self.summary()]
        for s in self.steps:
            what = {"start": "start", "reuse": f"reuse run {s.run_id}",
                    "join": f"wait for run {s.run_id}"}[s.action]
            after = (" after " + ",".join(f"#{j + 1}" for j in s.after)) if s.after else ""
            lines.append(f"#{s.index + 1:<3} {what:<18} {s.desc}{after}")
        return "\n".join(lines) + "\n"


def plan_specs(specs: Iterable[RunSpec], store: Store | None = None, rerun: bool = False,
               notes: Iterable[str] = (), warnings: Iterable[str] = ()) -> Plan:
    """A plan for already expanded ``specs`` (run order kept; repeats of one spec dropped).
    ``store``: where finished and active runs are looked up (None: every step starts)."""
    uniq: dict[str, RunSpec] = {}
    for s in specs:
        uniq.setdefault(s.hash(), s)
    specs = list(uniq.values())
    deps = dependencies(specs)
    steps = []
    for i, spec in enumerate(specs):
        action, rid = "start", None
        if store is not None:
            row = None if rerun else store.find_finished(spec.hash())
            if row is not None:
                action, rid = "reuse", int(row["id"])
            else:
                row = store.find_active(spec.hash())
                if row is not None:
                    action, rid = "join", int(row["id"])
        steps.append(Step(i, spec, action, rid, tuple(sorted(deps[i]))))
    return Plan(steps, list(notes), list(warnings))


def make_plan(options: Mapping[str, Any], *, grid: Mapping[str, Any] | None = None,
              sets: Iterable[str] = (), store: Store | None = None, rerun: bool = False,
              validate: Callable[[RunSpec], str] = check,
              methods_default: Iterable[str] = DEFAULT_METHODS) -> Plan:
    """Options (``experiment.KEYS`` -> raw value or None) and a grid -> the plan. Raises
    ``TarfError`` on bad input; writes nothing."""
    exp = expand(options, grid, sets, methods_default=methods_default, validate=validate)
    return plan_specs(exp.specs, store, rerun, exp.notes, exp.warnings)


# ---- the scheduler -------------------------------------------------------------------------
@dataclass
class Tick:
    started: list[int] = field(default_factory=list)  # ids whose engines this tick started
    reaped: list[int] = field(default_factory=list)  # ids this tick found dead (marked failed)
    ended: list[int] = field(default_factory=list)  # managed ids that became terminal


class Scheduler:
    """Runs plans: dependency order, at most ``workers`` engines, cancel, resume. Thread-safe
    (one lock around every call), so a TUI can tick it from a worker thread."""

    def __init__(self, launcher: Launcher, workers: int = 1):
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise TarfError(f"workers must be an integer >= 1, got {workers!r}")
        self.launcher = launcher
        self.pool = Pool(launcher, workers)
        self._waiting: dict[int, set[int]] = {}  # run id -> run ids it waits for
        self._managed: list[int] = []  # every run id submitted / resumed / joined, in order
        self._terminal: set[int] = set()
        self._lock = threading.RLock()

    @classmethod
    def local(cls, store: Store, engine_cmd: list[str] | None = None, workers: int = 1,
              executor: Executor | None = None) -> "Scheduler":
        """A scheduler starting engines as local subprocesses (``engine_cmd``)."""
        ex = executor if executor is not None else LocalExecutor(store.path, engine_cmd)
        return cls(Launcher(store, ex), workers)

    @property
    def store(self) -> Store:
        return self.launcher.store

    @property
    def workers(self) -> int:
        return self.pool.workers

    @workers.setter
    def workers(self, n: int) -> None:
        with self._lock:
            self.pool.workers = max(1, int(n))

    @property
    def managed(self) -> list[int]:
        return list(self._managed)

    @property
    def pending(self) -> int:
        """Runs waiting for a dependency or a free worker. Lock-free (a TUI reads it on its
        event loop while a worker thread may hold the lock for a tick)."""
        return len(self._waiting) + self.pool.status.queued

    @property
    def running(self) -> int:
        return self.pool.status.running

    # ---- adding runs -------------------------------------------------------------------
    def _manage(self, rid: int) -> None:
        if rid not in self._managed:
            self._managed.append(rid)

    def _add(self, rid: int, deps: Iterable[int]) -> None:
        self._manage(rid)
        deps = {d for d in deps if d != rid}
        if deps:
            self._waiting[rid] = deps
        else:
            self.pool.add(rid)

    def submit(self, plan: Plan) -> list[int]:
        """Create the rows of the plan's ``start`` steps and queue them behind their
        dependencies. A joined run that is still ``queued`` (left by a session that ended, e.g.
        a killed headless) is taken over as ``resume`` would; a running one is waited for.
        Returns every step's run id, in plan order (reused and joined too)."""
        with self._lock:
            ids: list[int] = []
            for st in plan.steps:
                ids.append(self.launcher.submit(st.spec) if st.action == "start" else int(st.run_id))
            held = set(self._waiting) | set(self.pool.run_ids)
            joined = self.store.statuses(i for st, i in zip(plan.steps, ids) if st.action == "join")
            for st, rid in zip(plan.steps, ids):
                if st.action == "start" or (joined.get(rid) == "queued" and rid not in held):
                    self._add(rid, (ids[j] for j in st.after))
                else:
                    self._manage(rid)  # reused: terminal already; running: its engine runs it
            self._tick()
            return ids

    def resume(self, run_ids: Iterable[int] | None = None) -> list[int]:
        """Queue the store's ``queued`` rows (all, or those of ``run_ids``) that this scheduler
        does not hold yet, in id order, with the dependency order recomputed over them and
        the runs still running. Returns the ids taken over."""
        with self._lock:
            active = sorted(self.store.list_runs(status=list(ACTIVE)), key=lambda r: r["id"])
            want = None if run_ids is None else {int(i) for i in run_ids}
            held = set(self._waiting) | set(self.pool.run_ids)
            rows, specs = [], []
            for r in active:
                try:
                    spec = RunSpec.from_dict(r["spec"])
                except TarfError:
                    continue  # a row whose spec no longer parses: the engine will say why
                rows.append(r)
                specs.append(spec)
            deps = dependencies(specs)
            taken = []
            for i, r in enumerate(rows):
                rid = r["id"]
                if r["status"] != "queued" or rid in held or (want is not None and rid not in want):
                    continue
                self._add(rid, (rows[j]["id"] for j in deps[i]))
                taken.append(rid)
            if want is not None:
                missing = sorted(want - {r["id"] for r in rows if r["status"] == "queued"})
                if missing:
                    st = self.store.statuses(missing)
                    bad = ", ".join(f"run {i} is {st[i]}" if i in st else f"no run {i}"
                                    for i in missing)
                    raise TarfError(f"cannot resume: {bad} (only queued runs resume)")
            self._tick()
            return taken

    # ---- running -----------------------------------------------------------------------
    def tick(self) -> Tick:
        """Reap, release, start; non-blocking."""
        with self._lock:
            return self._tick()

    def _tick(self) -> Tick:
        if self._waiting:
            ids = set(self._waiting) | set().union(*self._waiting.values())
            st = self.store.statuses(ids)
            for rid, deps in list(self._waiting.items()):
                if st.get(rid) != "queued":  # cancelled or deleted meanwhile
                    del self._waiting[rid]
                elif all(st.get(d) in TERMINAL or d not in st for d in deps):
                    del self._waiting[rid]
                    self.pool.add(rid)
        ps = self.pool.tick()
        ended = []
        st = self.store.statuses(self._managed)
        for rid in self._managed:
            s = st.get(rid)
            if rid not in self._terminal and (s in TERMINAL or s is None):
                self._terminal.add(rid)
                ended.append(rid)
        return Tick(list(ps.started), list(ps.reaped), ended)

    def is_done(self, run_ids: Iterable[int] | None = None) -> bool:
        """Whether every run of ``run_ids`` (default: every managed one) is terminal (or gone)
        and none is waiting here."""
        with self._lock:
            ids = list(self._managed if run_ids is None else run_ids)
            if any(i in self._waiting for i in ids):
                return False
            st = self.store.statuses(ids)
            return all(st.get(i) in TERMINAL or i not in st for i in ids)

    # ---- stopping ----------------------------------------------------------------------
    def cancel(self, run_ids: Iterable[int], timeout: float = 10.0) -> dict[int, str]:
        """Stop these runs (queued ones become ``killed`` at once; running ones get SIGTERM,
        then SIGKILL after ``timeout``). Returns their final statuses."""
        ids = [int(i) for i in run_ids]
        with self._lock:
            for i in ids:
                self._waiting.pop(i, None)
            return self.launcher.cancel_many(ids, timeout)

    def cancel_all(self, timeout: float = 10.0) -> dict[int, str]:
        """Cancel every managed run that is not terminal yet."""
        with self._lock:
            st = self.store.statuses(self._managed)
            live = [i for i in self._managed if st.get(i) in ACTIVE]
            self._waiting.clear()
            return self.launcher.cancel_many(live, timeout) if live else {}

    def release(self) -> list[int]:
        """Forget the pending runs without cancelling them ("leave running"): they stay
        ``queued`` in the store, for the next ``resume``. Returns their ids."""
        with self._lock:
            ids = list(self._waiting) + self.pool.pending
            self._waiting.clear()
            self.pool.clear_queue()
            return ids


__all__ = ["ACTIONS", "Plan", "Scheduler", "Step", "Tick", "dependencies", "make_plan",
           "plan_specs"]
