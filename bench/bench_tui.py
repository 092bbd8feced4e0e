"""TUI responsiveness with 1,000 runs in the database and 3 runs live (fake engines writing an
epoch every 0.5 s).

    .venv/bin/python -m bench.bench_tui [--runs 1000] [--live 3] [--idle-s 10]

Measures
1. key press -> repaint, headless (Textual Pilot): ``down`` (cursor), ``s`` (re-sort all rows),
   ``/`` + typing a filter, and F2/F3 screen switches; median / p95 / max in ms.
2. the same in a real terminal (tmux): time from ``send-keys`` until the pane shows the change.
3. the app's own CPU while idle on the runs screen and on a live run's detail screen, from
   /proc/<pid>/stat over ``--idle-s`` seconds (percent of one core).
Targets: key -> repaint < 100 ms; idle CPU < 5 %.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

from engine.spec import RunSpec
from engine.store import Store, Workspace

FAKE = [sys.executable, str(ROOT / "tests" / "fake_engine.py")]


def build_workspace(path: Path, n: int, live: int) -> tuple[Workspace, list[subprocess.Popen]]:
    ws = Workspace(path)
    methods = ("retrained", "ft", "ga", "rl", "tarf")
    with Store(ws.db_path) as s:
        def fill(db):
            for i in range(n):
                spec = RunSpec(case=(10, 11, 12, 13)[i % 4], method=methods[i % 5], seed=i // 20)
                db.execute(
                    "INSERT INTO runs (status, dataset, case_no, method, seed, experiment, spec_hash,"
                    " spec, created_at, started_at, finished_at, ua, ra, ta, mia, gap, rte_s) VALUES"
                    " ('finished', ?, ?, ?, ?, ?, ?, ?, '2026-05-09T08:00:00.000+00:00',"
                    " '2026-05-09T08:00:00.000+00:00', '2026-05-09T08:01:00.000+00:00',"
                    " ?, ?, ?, ?, ?, ?)",
                    [spec.dataset, spec.case, spec.method, spec.seed, spec.experiment_key(),
                     spec.hash(), spec.to_json(), 5.0 + i % 7, 90.0, 88.0, 12.0, 3.0 + i % 11, 30.0])
        s._write(fill)
        ids = [s.create_run(RunSpec(method="tarf", seed=100 + k)) for k in range(live)]
    env = {**os.environ, "TARF_FAKE_DELAY": "0.5", "TARF_FAKE_EPOCHS": "100000"}
    procs = [subprocess.Popen([*FAKE, "run", "--db", str(ws.db_path), "--run-id", str(r)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
             for r in ids]
    return ws, procs


def stats(xs: list[float]) -> str:
    xs = sorted(xs)
    if not xs:
        return "no sample (the screen never showed)"
    p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
    return f"median {statistics.median(xs):6.1f} ms  p95 {p95:6.1f} ms  max {xs[-1]:6.1f} ms  (n={len(xs)})"


# ---- 1. headless ---------------------------------------------------------------------------
async def switches(pilot, out: dict[str, list[float]], reps: int = 10) -> None:
    """Screen switches: F2 (builder), F4 (compare), F3 (runs), enter (a run's detail) and Esc
    (back to the runs), each timed from the key event until the new screen is current and its
    first frame has been composed and handed to the driver (``App._display``). Pilot's own
    idle detection is not part of the figure (it adds 20 ms sleeps until the CPU is quiet)."""
    from textual import events

    app = pilot.app
    frames: list[tuple[float, object]] = []
    display = app._display

    def recording_display(screen, renderable):
        display(screen, renderable)
        if renderable is not None:
            frames.append((time.perf_counter(), screen))

    app._display = recording_display

    async def one(name: str, key: str, target) -> None:
        await pilot.pause()  # settle first (not timed)
        t = time.perf_counter()
        app._driver.send_message(events.Key(key, None))
        deadline = t + 10
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.0005)
            want = target()
            if app.screen is want and any(ft >= t and fs is want for ft, fs in frames[-8:]):
                break
        ft = next(ft for ft, fs in reversed(frames) if fs is app.screen)
        first = min(f for f, fs in frames if f >= t and fs is app.screen)
        out.setdefault(name, []).append((first - t) * 1000)
        del ft

    for _ in range(reps):
        await one("F2 (to builder)", "f2", lambda: app.builder)
        await one("F4 (to compare)", "f4", lambda: app.compare)
        await one("F3 (to runs)", "f3", lambda: app.runs)
        app.runs.query_one("#runs-table").focus()
        await one("enter (run detail)", "enter",
                  lambda: app.screen if app.screen not in (app.runs,) else None)
        await one("Esc (detail to runs)", "escape", lambda: app.runs)
    app._display = display


async def headless(ws: Workspace, switches_only: bool = False) -> dict[str, list[float]]:
    from tarf_tui.app import TarfApp
    from tarf_tui.launcher import Launcher

    app = TarfApp(ws, launcher=Launcher(Store(ws.db_path), stale_after=1e9))
    out: dict[str, list[float]] = {}
    async with app.run_test(size=(150, 48)) as pilot:
        runs = app.runs
        while len(runs.rows) < 1000:
            await pilot.pause(0.1)
        runs.query_one("#runs-table").focus()
        await pilot.pause(0.5)

        async def timed(name: str, *keys: str, reps: int = 20) -> None:
            for _ in range(reps):
                t = time.perf_counter()
                await pilot.press(*keys)
                await pilot.pause()  # processed and a refresh has happened
                out.setdefault(name, []).append((time.perf_counter() - t) * 1000)

        await timed("down (cursor)", "down", reps=40)
        await timed("s (re-sort 1003 rows)", "s", reps=26)
        await switches(pilot, out)
        if switches_only:
            return out
        runs.query_one("#runs-table").focus()
        await pilot.press("slash")
        await timed("type filter char", "a", reps=10)
        await pilot.press("escape")
        await pilot.pause()
    return out


# ---- 2 and 3. real terminal ----------------------------------------------------------------
class Tmux:
    def __init__(self, ws: Workspace):
        self.name = f"bench-{uuid.uuid4().hex[:6]}"
        self.t = ["tmux", "-L", self.name]
        cmd = (f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES {shlex.quote(sys.executable)}"
               f" -m tarf_tui -w {shlex.quote(str(ws.path))}; sleep 30")
        subprocess.run([*self.t, "-f", "/dev/null", "new-session", "-d", "-s", self.name, "-x",
                        "150", "-y", "48", cmd], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.t, "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True).stdout

    def keys(self, *k: str) -> None:
        subprocess.run([*self.t, "send-keys", "-t", self.name, *k], check=True)

    def app_pid(self) -> int:
        shell = int(subprocess.run([*self.t, "list-panes", "-t", self.name, "-F", "#{pane_pid}"],
                                   capture_output=True, text=True).stdout.split()[0])
        for _ in range(50):
            kids = subprocess.run(["pgrep", "-P", str(shell)], capture_output=True, text=True).stdout.split()
            if kids:
                return int(kids[0])
            time.sleep(0.1)
        raise RuntimeError("app process not found")

    def close(self) -> None:
        subprocess.run([*self.t, "kill-server"], capture_output=True)


def cpu_s(pid: int) -> float:
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def until(tm: Tmux, cond, timeout: float = 5.0) -> float:
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        if cond(tm.screen()):
            return (time.perf_counter() - t) * 1000
        time.sleep(0.002)
    return float("nan")


RUNS_SHOWN = re.compile(r"\d+/\d+ runs ·")
DETAIL = re.compile(r"accuracy.{0,8}per epoch")  # the run detail's chart title


def terminal_switches(tm: Tmux, out: dict[str, object], reps: int = 6) -> None:
    """F2 / F4 / F3 / enter / Esc in the real terminal: send-keys until the pane shows the new
    screen (each screen's own words), the user-visible latency."""
    is_runs = lambda s: RUNS_SHOWN.search(s) and "Task case" not in s and "Experiments" not in s  # noqa: E731
    steps = (("F2 -> builder", "F2", lambda s: "Task case" in s),
             ("F4 -> compare", "F4", lambda s: "Experiments" in s and "Task case" not in s),
             ("F3 -> runs", "F3", is_runs),
             ("enter -> detail", "Enter", lambda s: DETAIL.search(s) is not None),
             ("Esc -> runs", "Escape", lambda s: is_runs(s) and DETAIL.search(s) is None),
             ("enter -> detail (again)", "Enter", lambda s: DETAIL.search(s) is not None),
             ("Backspace -> runs", "BSpace", lambda s: is_runs(s) and DETAIL.search(s) is None))
    for _ in range(reps):
        for name, key, cond in steps:
            time.sleep(0.4)  # let the previous screen settle (not timed)
            tm.keys(key)
            out.setdefault(name, []).append(until(tm, cond))


def terminal(ws: Workspace, idle_s: float, switches_only: bool = False) -> dict[str, object]:
    tm = Tmux(ws)
    out: dict[str, object] = {}
    try:
        until(tm, lambda s: re.search(r"\d+/1003 runs", s), timeout=30)
        if switches_only:
            time.sleep(2)
            terminal_switches(tm, out)
            return out
        pid = tm.app_pid()
        time.sleep(2)
        c0, t0 = cpu_s(pid), time.monotonic()
        time.sleep(idle_s)
        out["idle CPU, runs screen (3 live)"] = 100 * (cpu_s(pid) - c0) / (time.monotonic() - t0)
        lat = []
        for _ in range(12):
            before = re.search(r"sort (\w+)", tm.screen()).group(1)
            tm.keys("s")
            lat.append(until(tm, lambda s: (m := re.search(r"sort (\w+)", s)) and m.group(1) != before))
        out["s (re-sort) key -> pane changed"] = lat
        terminal_switches(tm, out)
        # a live run's detail: filter to the running ones, open the first
        tm.keys("/")
        subprocess.run([*tm.t, "send-keys", "-l", "-t", tm.name, "status=running"])
        tm.keys("Enter")
        time.sleep(0.5)
        tm.keys("Enter")
        until(tm, lambda s: DETAIL.search(s) is not None, timeout=10)
        time.sleep(2)
        c0, t0 = cpu_s(pid), time.monotonic()
        time.sleep(idle_s)
        out["CPU on live detail screen (charts updating 2/s)"] = 100 * (cpu_s(pid) - c0) / (time.monotonic() - t0)
    finally:
        tm.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--live", type=int, default=3)
    ap.add_argument("--idle-s", type=float, default=10.0)
    ap.add_argument("--switches", action="store_true",
                    help="only the headless screen-switch timings (F2/F3/F4, enter, Esc)")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-tui-"))
    ws, procs = build_workspace(tmp / "ws", a.runs, a.live)
    try:
        print(f"workspace: {a.runs} finished runs + {a.live} live fake engines (an epoch / 0.5 s)")
        print("1. headless (Pilot): key press -> processed + repainted")
        for k, v in asyncio.run(headless(ws, a.switches)).items():
            print(f"   {k:<24} {stats(v)}")
        if shutil.which("tmux"):
            print("2./3. real terminal (tmux 150x48)")
            for k, v in terminal(ws, a.idle_s, a.switches).items():
                if isinstance(v, list):
                    print(f"   {k:<34} {stats([x for x in v if x == x])}")
                else:
                    print(f"   {k:<34} {v:5.2f} % of one core")
        else:
            print("tmux missing: real-terminal figures skipped")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
