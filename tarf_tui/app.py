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
from engine.store import ACTIVE, TERMINAL, Store, Workspace

from .launcher import Launcher, LocalExecutor, Pool
from .widgets.common import Clock, utc_now

POOL_TICK_S = 0.5  # how often queued runs are started / dead engines reaped
DEFAULT_WORKERS = 2  # engines at once unless the builder says otherwise


class RunQueue:
    """Runs submitted from the builder: each waits for its dependencies (``experiment.plan``:
    the Retrained reference first, one original model at a time), then a ``Pool`` keeps at
    most ``workers`` engines running. Thread-confined to ``TarfApp``'s launcher lock."""

    def __init__(self, launcher: Launcher, workers: int = DEFAULT_WORKERS):
        self.launcher = launcher
        self.pool = Pool(launcher, workers)
        self.waiting: dict[int, set[int]] = {}

    @property
    def workers(self) -> int:
        return self.pool.workers

    @workers.setter
    def workers(self, n: int) -> None:
        self.pool.workers = max(1, int(n))

    def add(self, run_id: int, deps: Iterable[int] = ()) -> None:
        deps = set(deps)
        if deps:
            self.waiting[run_id] = deps
        else:
            self.pool.add(run_id)

    def tick(self):
        if self.waiting:
            ids = set(self.waiting) | set().union(*self.waiting.values())
            st = self.launcher.store.statuses(ids)
            for rid, deps in list(self.waiting.items()):
                if st.get(rid) != "queued":
                    del self.waiting[rid]
                elif all(st.get(d) in TERMINAL or d not in st for d in deps):
                    del self.waiting[rid]
                    self.pool.add(rid)
        return self.pool.tick()

    @property
    def pending(self) -> int:
        return len(self.waiting) + len(self.pool._queue)


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
    ]

    def __init__(self, workspace: str | Path | Workspace | None = None,
                 launcher: Launcher | None = None, *, engine_cmd: list[str] | None = None,
                 clock: Clock = utc_now, poll_s: float = 1.0, start_screen: str | None = None,
                 workers: int = DEFAULT_WORKERS):
        super().__init__()
        self.workspace = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
        self.store: Store = launcher.store if launcher is not None else self.workspace.store()
        self.launcher = launcher or Launcher(
            self.store, LocalExecutor(self.store.path, engine_cmd=engine_cmd))
        self.queue = RunQueue(self.launcher, workers)
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
            start = "runs" if self.store._rows("SELECT id FROM runs LIMIT 1") else "builder"
        self.push_screen(start)
        self.set_interval(POOL_TICK_S, self._tick_queue, name="pool")
        self.bg(self.launcher.reap)  # runs whose engines died while we were away

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

        self.push_screen(DetailScreen(run_id))

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
        if not q.pending and not q.pool.status.running:
            return
        self.bg(q.tick, group="pool", exclusive=False, launcher=True)

    # ---- launching / cancelling ------------------------------------------------------------
    def submit(self, specs: list[RunSpec], deps: dict[int, set[int]] | None = None,
               workers: int | None = None, done: Callable[[list[int]], None] | None = None) -> None:
        """Queue ``specs`` (``deps``: index -> indices it waits for); at most ``workers`` engines."""
        deps = deps or {}

        def go():
            ids = [self.launcher.submit(s) for s in specs]
            if workers:
                self.queue.workers = workers
            for i, rid in enumerate(ids):
                self.queue.add(rid, {ids[j] for j in deps.get(i, ())})
            self.queue.tick()
            return ids

        self.bg(go, done=done, launcher=True)

    def cancel_runs(self, run_ids: list[int], done: Callable[[Any], None] | None = None) -> None:
        self.bg(self.launcher.cancel_many, run_ids, done=done, launcher=True, group="cancel")

    def action_start_queued(self) -> None:
        def go():
            ids = [r["id"] for r in self.store.list_runs(status="queued")]
            for rid in ids:
                self.queue.add(rid)
            return ids

        self.bg(go, done=lambda ids: self.notify(f"{len(ids)} queued runs added to the queue"),
                launcher=True)

    # ---- quitting ------------------------------------------------------------------------
    async def action_quit(self) -> None:
        from .screens.dialogs import QuitScreen

        def active():
            rows = self.store._rows("SELECT id, status FROM runs WHERE status IN "
                                    "('queued', 'running')")
            return [r["id"] for r in rows]

        def ask(ids: list[int]) -> None:
            if not ids:
                self.exit()
                return
            running = len(ids)

            def chosen(answer: str | None) -> None:
                if answer == "cancel":
                    self.notify(f"cancelling {running} runs…")
                    self.queue.waiting.clear()
                    self.queue.pool._queue.clear()
                    self.cancel_runs(ids, done=lambda _: self.exit())
                elif answer == "leave":
                    self.exit()

            self.push_screen(QuitScreen(running), chosen)

        self.bg(active, done=ask, group="quit")


def run_app(workspace: str | Path | None = None) -> None:
    """Open the TUI on ``workspace`` (default ``$TARF_HOME`` or ``./tarf-runs``)."""
    import os
    import shlex

    cmd = os.environ.get("TARF_ENGINE_CMD")  # e.g. a fake engine for demos and smoke tests
    TarfApp(workspace, engine_cmd=shlex.split(cmd) if cmd else None).run()
