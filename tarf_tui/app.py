"""The Textual app: experiment builder, runs, run detail and compare screens over one workspace.

``TarfApp(workspace, launcher=None, ...)`` is the factory tests call with fakes; ``run_app``
is what ``tarf-tui`` calls. Never imports torch; every database read and every launcher call
runs in a thread worker (``App.bg``), so the event loop never waits on I/O.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen

from engine.errors import TarfError
from engine.spec import RunSpec
from engine.store import ACTIVE, Store, Workspace

from .launcher import Launcher
from .slurm import workspace_executor
from .planner import Plan, Scheduler, make_plan, plan_specs
from .widgets.common import Clock, utc_now

POOL_TICK_S = 0.5  # how often queued runs are started / dead engines reaped
MIN_SIZE = (80, 24)  # the smallest terminal every screen is laid out for
DEFAULT_WORKERS = 2  # engines at once unless the builder says otherwise


class TarfApp(App):
    """tarf-tui. ``launcher``: inject a fake (tests); default: a ``Launcher`` with a
    ``LocalExecutor`` running ``engine_cmd`` (default ``python -m engine``)."""

    CSS_PATH = "app.tcss"
    TITLE = "tarf-tui"
    ENABLE_COMMAND_PALETTE = True
    # size classes the stylesheet adapts to (80x24 is the smallest supported terminal)
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (36, "-tall")]
    BINDINGS = [
        Binding("f2", "show('builder')", "New experiment"),
        Binding("f3", "show('runs')", "Runs"),
        Binding("f4", "show('compare')", "Compare"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark", "help", "Keys", tooltip="This key reference"),
    ]

    def __init__(self, workspace: str | Path | Workspace | None = None,
                 launcher: Launcher | None = None, *, engine_cmd: list[str] | None = None,
                 clock: Clock = utc_now, poll_s: float = 1.0, start_screen: str | None = None,
                 workers: int = DEFAULT_WORKERS):
        super().__init__()
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        # a workspace that cannot be written opens read-only; ``read_only_notice`` says why
        self.store: Store = launcher.store if launcher is not None else self.workspace.open(write=False)
        self.read_only_notice: str | None = self.workspace.notice if launcher is None else None
        # Slurm runs of the workspace are followed (synced from their run folders) like local ones
        self.launcher = launcher or Launcher(
            self.store, workspace_executor(self.store, engine_cmd=engine_cmd))
        # the one scheduler (planner.Scheduler): dependency order, worker limit, cancel, resume
        self.queue = Scheduler(self.launcher, workers)
        self.launcher_lock = threading.RLock()
        self.clock = clock
        self.poll_s = poll_s
        self._start_screen = start_screen
        self.sub_title = f"workspace {self.workspace.path.name}"

    # ---- screens -----------------------------------------------------------------------
    def on_mount(self) -> None:
        from .screens.builder import BuilderScreen
        from .screens.compare import CompareScreen
        from .screens.runs import RunsScreen

        self.builder = BuilderScreen()
        self.runs = RunsScreen()
        self.compare = CompareScreen()
        self.install_screen(self.builder, "builder")
        self.install_screen(self.runs, "runs")
        self.install_screen(self.compare, "compare")
        start = self._start_screen
        if start is None:  # empty workspace: the builder; else the runs
            start = "runs" if self.store.has_runs() else "builder"
        self.push_screen(start)
        self.check_size(*self.size)
        self.set_interval(POOL_TICK_S, self._tick_queue, name="pool")
        if self.store.read_only:
            self.sub_title = f"workspace {self.workspace.path.name} (read-only)"
            self.notify(f"{self.read_only_notice or 'read-only workspace'}: runs can be viewed, "
                        "not started, cancelled or deleted", severity="warning", timeout=10)
            return
        # runs whose engines died while we were away are marked; runs left queued resume
        self.bg(self._resume_on_start, launcher=True, done=self._resumed)

    def _resume_on_start(self) -> list[int]:
        self.launcher.reap()
        return self.queue.resume()

    def _resumed(self, ids: list[int]) -> None:
        if ids:
            self.notify(f"resumed {len(ids)} queued run(s) left from an earlier session")

    def on_resize(self, event) -> None:
        self.check_size(event.size.width, event.size.height)

    def check_size(self, width: int, height: int) -> bool:
        """Below ``MIN_SIZE``: one warning naming the minimum (again after it was fixed and
        broken again); returns whether the terminal is big enough."""
        small = width < MIN_SIZE[0] or height < MIN_SIZE[1]
        if small and not getattr(self, "_small", False):
            self.notify(f"terminal {width}x{height} is below the {MIN_SIZE[0]}x{MIN_SIZE[1]} "
                        "minimum: panels are cut; enlarge the window", severity="warning",
                        timeout=8)
        self._small = small
        return not small

    def action_show(self, name: str) -> None:
        target = self.get_screen(name)
        if self.screen is target:
            return
        # keep one copy of each main screen on the stack: pop what is above the base
        while len(self.screen_stack) > 2:
            self.pop_screen()
        if self.screen is target:
            return
        self.switch_screen(name)

    def open_detail(self, run_id: int) -> None:
        from .screens.detail import DetailScreen

        d = getattr(self, "detail", None)
        if d is None:  # one detail screen, installed and reused for every run
            self.detail = d = DetailScreen(run_id)
            self.install_screen(d, "detail")
        else:
            d.show_run(run_id)
        if self.screen is not d:
            self.push_screen(d)

    def action_help(self) -> None:
        """``?``: the key reference, the current screen's section highlighted."""
        from .screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        names = {"BuilderScreen": "Builder", "RunsScreen": "Runs", "DetailScreen": "Run detail",
                 "OverlayScreen": "Overlay", "CompareScreen": "Compare"}
        self.push_screen(HelpScreen(names.get(type(self.screen).__name__)))

    def open_overlay(self, run_ids: list[int]) -> None:
        from .screens.overlay import OverlayScreen

        self.push_screen(OverlayScreen(run_ids))

    def open_compare(self, experiment: str | None) -> None:
        self.action_show("compare")
        if experiment:
            self.compare.select_experiment(experiment)

    def open_builder_from(self, spec: dict) -> None:
        self.action_show("builder")
        self.builder.load_spec(spec)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New experiment", "Open the experiment builder (F2)",
                            lambda: self.action_show("builder"))
        yield SystemCommand("Runs", "The table of runs (F3)", lambda: self.action_show("runs"))
        yield SystemCommand("Compare", "Table 1 of one experiment, Gap chart, export (F4)",
                            lambda: self.action_show("compare"))
        yield SystemCommand("Start queued runs", "Queue every run still marked queued (e.g. "
                            "left from an earlier session)", self.action_start_queued)
        for fmt in ("md", "csv", "latex", "json"):
            yield SystemCommand(f"Export comparison as {fmt}",
                                "Write the selected experiment's Table 1 to the workspace",
                                lambda f=fmt: self.compare.export((f,)))
        if hasattr(screen, "palette_commands"):
            yield from screen.palette_commands()

    # ---- background work -----------------------------------------------------------------
    def bg(self, fn: Callable[..., Any], *args: Any, done: Callable[[Any], None] | None = None,
           group: str = "bg", exclusive: bool = False, launcher: bool = False) -> None:
        """Run ``fn(*args)`` in a thread worker; ``done(result)`` back on the event loop. Errors
        become one-line notifications (``TarfError``: its message; others: type and message)."""

        def work():
            try:
                if launcher:
                    with self.launcher_lock:
                        out = fn(*args)
                else:
                    out = fn(*args)
            except TarfError as e:
                self.call_from_thread(self.notify, str(e), severity="error", timeout=8)
                return
            except Exception as e:  # never a traceback on screen
                msg = " ".join(f"{type(e).__name__}: {e}".split())[:300]
                self.call_from_thread(self.notify, msg, severity="error", timeout=8)
                return
            if done is not None:
                self.call_from_thread(done, out)

        self.run_worker(work, thread=True, group=group, exclusive=exclusive, exit_on_error=False)

    def _tick_queue(self) -> None:
        q = self.queue
        if not q.pending and not q.running:
            # cluster runs (submitted earlier, or by a headless elsewhere) are followed anyway
            if hasattr(self.launcher.executor, "has_slurm_runs"):
                self.bg(self._sync_cluster, group="cluster", exclusive=True, launcher=True)
            return
        self.bg(q.tick, group="pool", exclusive=False, launcher=True)

    def _sync_cluster(self) -> None:
        if self.launcher.executor.has_slurm_runs():
            self.launcher.reap()  # reap syncs first: folders ingested, Slurm's states applied

    # ---- launching / cancelling (all through planner.Scheduler) ---------------------------
    def launch(self, options: dict, sets: Iterable[str] = (), workers: int | None = None,
               done: Callable[[Plan], None] | None = None) -> None:
        """Plan the builder's choices (``planner.make_plan``: reuse of finished specs, identical
        active runs joined, dependency order) and queue what must run; ``done(plan)``."""

        def go() -> Plan:
            plan = make_plan(options, sets=sets, store=self.store)
            if workers:
                self.queue.workers = workers
            self.queue.submit(plan)
            return plan

        self.bg(go, done=done, launcher=True)

    def submit(self, specs: list[RunSpec], deps: dict[int, set[int]] | None = None,
               workers: int | None = None, done: Callable[[list[int]], None] | None = None) -> None:
        """Queue ``specs`` through the planner: a spec that already finished is reused and one
        already queued or running is joined, not duplicated; the dependency order is the
        planner's (``deps`` is accepted for compatibility and not needed). ``done(ids)``: every
        spec's run id, in order (reused and joined ones included)."""

        def go() -> list[int]:
            plan = plan_specs(specs, self.store)
            if workers:
                self.queue.workers = workers
            ids = self.queue.submit(plan)
            by_hash = dict(zip((st.spec.hash() for st in plan.steps), ids))
            return [by_hash[s.hash()] for s in specs]

        self.bg(go, done=done, launcher=True)

    def cancel_runs(self, run_ids: list[int], done: Callable[[Any], None] | None = None) -> None:
        self.bg(self.queue.cancel, run_ids, done=done, launcher=True, group="cancel")

    def delete_run(self, run_id: int, done: Callable[[Any], None] | None = None) -> None:
        """Delete a run and its epochs; a queued one is cancelled first (it has no engine), a
        running one is refused (cancel it first)."""

        def go() -> int:
            run = self.store.get_run(run_id)
            if run is None:
                raise TarfError(f"run {run_id} no longer exists")
            if run["status"] == "running":
                raise TarfError(f"run {run_id} is running: cancel it first (c)")
            if run["status"] == "queued":
                self.queue.cancel([run_id])
            self.store.delete_run(run_id)
            return run_id

        self.bg(go, done=done, launcher=True, group="delete")

    def action_start_queued(self) -> None:
        self.bg(self.queue.resume, done=lambda ids: self.notify(
            f"{len(ids)} queued runs added to the queue"), launcher=True)

    # ---- quitting ------------------------------------------------------------------------
    async def action_quit(self) -> None:
        from .screens.dialogs import QuitScreen

        def active():
            return [r["id"] for r in self.store.list_runs(status=list(ACTIVE))]

        def ask(ids: list[int]) -> None:
            if not ids:
                self.exit()
                return
            running = len(ids)

            def chosen(answer: str | None) -> None:
                if answer == "cancel":
                    self.notify(f"cancelling {running} runs…")
                    self.cancel_runs(ids, done=lambda _: self.exit())
                elif answer == "leave":
                    # engines keep going; queued runs stay queued and resume on the next start
                    self.bg(self.queue.release, launcher=True, done=lambda _: self.exit())

            self.push_screen(QuitScreen(running), chosen)

        self.bg(active, done=ask, group="quit")


def run_app(workspace: str | Path | None = None) -> None:
    """Open the TUI on ``workspace`` (default ``$TARF_HOME`` or ``./tarf-runs``). The engine
    command is ``LocalExecutor``'s (``$TARF_ENGINE_CMD`` when set)."""
    TarfApp(workspace).run()
