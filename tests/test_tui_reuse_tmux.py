"""Issue 11's must-show, in a real terminal (tmux): in a workspace where ``tarf-tui headless``
already finished the default experiment, launching the same experiment from the builder starts
no engine and adds no run. The fake engine stands in for the real one (the planner decides
before any engine is involved); skipped without tmux."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from engine.store import Store

ROOT = Path(__file__).resolve().parent.parent
FAKE = f"{sys.executable} {ROOT / 'tests' / 'fake_engine.py'}"

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed"),
              pytest.mark.timeout(300)]


def _screen(tmux: list[str], name: str) -> str:
    return subprocess.run([*tmux, "capture-pane", "-p", "-t", name], capture_output=True,
                          text=True).stdout


def _wait(tmux, name, pattern, timeout=40.0) -> str:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = _screen(tmux, name)
        if re.search(pattern, s):
            return s
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not on screen after {timeout}s:\n{_screen(tmux, name)}")


def _state(ws: Path) -> tuple[list[tuple[int, str]], int]:
    with Store(ws / "tarf.db") as s:
        rows = sorted((r["id"], r["status"]) for r in s.list_runs())
    starts = sum(p.read_text().count(" start: ") for p in (ws / "logs").glob("run-*.log"))
    return rows, starts


def test_builder_launch_of_a_finished_experiment_starts_nothing(tmp_path):
    ws = tmp_path / "ws"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TARF_ENGINE_CMD": FAKE, "TARF_FAKE_EPOCHS": "2"}
    env.pop("TARF_HOME", None)
    r = subprocess.run([sys.executable, "-m", "tarf_tui", "headless", "-w", str(ws), "--format", "csv"],
                       capture_output=True, text=True, env=env, timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    before = _state(ws)
    assert [s for _, s in before[0]] == ["finished"] * 4 and before[1] == 4

    name = f"tarf-{uuid.uuid4().hex[:8]}"
    tmux = ["tmux", "-L", name]
    envs = " ".join(f"{k}={shlex.quote(env[k])}" for k in ("PYTHONPATH", "TARF_ENGINE_CMD", "TARF_FAKE_EPOCHS"))
    cmd = (f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES -u TARF_HOME {envs} "
           f"{shlex.quote(sys.executable)} -m tarf_tui -w {shlex.quote(str(ws))}; "
           "echo TUI-EXITED rc=$?; sleep 60")
    subprocess.run([*tmux, "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", "150",
                    "-y", "48", cmd], check=True)
    try:
        _wait(tmux, name, r"4/4 runs|runs", timeout=60)  # a non-empty workspace opens on the runs
        subprocess.run([*tmux, "send-keys", "-t", name, "F2"], check=True)
        _wait(tmux, name, r"Task case", timeout=30)
        time.sleep(1.0)  # the builder's defaults (tree, sizes) settle
        subprocess.run([*tmux, "send-keys", "-t", name, "C-l"], check=True)  # launch the default
        _wait(tmux, name, r"0 started, 4 reused", timeout=30)  # the planner found all four
        time.sleep(2.0)  # several scheduler ticks (0.5 s each)
        assert _state(ws) == before  # no run added, no engine started
        subprocess.run([*tmux, "send-keys", "-t", name, "C-q"], check=True)
        _wait(tmux, name, r"TUI-EXITED rc=0", timeout=30)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    assert _state(ws) == before
