"""Real-terminal smoke tests: ``tarf-tui`` inside tmux (skipped when tmux is missing).

- an empty workspace opens on the case picker with the categories, and ctrl+q quits cleanly;
- a launched run's chart grows in the run-detail screen (fake engine; with ``--run-slow`` also
  the real engine on the embedded synthetic dataset).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid

import pytest

from tests.tui_support import FAKE_CMD, ROOT

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux not installed"),
              pytest.mark.timeout(300)]


class Tmux:
    def __init__(self, workspace, env: dict[str, str] | None = None, size=(150, 48)):
        self.name = f"tarf-{uuid.uuid4().hex[:8]}"
        envs = " ".join(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items())
        cmd = (f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES {envs} {shlex.quote(sys.executable)} -m tarf_tui "
               f"-w {shlex.quote(str(workspace))}; echo TUI-EXITED rc=$?; sleep 60")
        self.tmux = ["tmux", "-L", self.name]  # a private server: sizes are ours alone
        subprocess.run([*self.tmux, "-f", "/dev/null", "new-session", "-d", "-s", self.name,
                        "-x", str(size[0]), "-y", str(size[1]), cmd], check=True)

    def screen(self) -> str:
        return subprocess.run([*self.tmux, "capture-pane", "-p", "-t", self.name],
                              capture_output=True, text=True).stdout

    def keys(self, *keys: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text: str) -> None:
        subprocess.run([*self.tmux, "send-keys", "-l", "-t", self.name, text], check=True)

    def wait(self, pattern: str, timeout: float = 30.0) -> re.Match:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = re.search(pattern, self.screen())
            if m:
                return m
            time.sleep(0.2)
        raise AssertionError(f"{pattern!r} not on screen after {timeout}s:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([*self.tmux, "kill-server"], capture_output=True)


@pytest.fixture
def tmux_factory():
    made = []

    def make(*a, **kw):
        t = Tmux(*a, **kw)
        made.append(t)
        return t

    yield make
    for t in made:
        t.close()


def test_empty_workspace_shows_case_picker_and_quits(tmux_factory, tmp_path):
    t = tmux_factory(tmp_path / "ws")
    t.wait(r"Task case", timeout=40)
    t.wait(r"data-mismatch", timeout=10)
    s = t.screen()
    for word in ("all-matched", "target-mismatch", "model-mismatch", "data-mismatch",
                 "impractical", "★ 10", "★ 13"):
        assert word in s, word
    t.keys("C-q")
    t.wait(r"TUI-EXITED rc=0", timeout=20)


def _chart_grows(t: "Tmux", timeout: float) -> None:
    t.wait(r"Task case", timeout=40)
    t.keys("C-l")  # launch the default experiment (Retrained + FT, GA, TARF on case 11)
    t.wait(r"\d+/\d+ runs", timeout=60)
    time.sleep(1.0)  # let the runs screen take focus
    t.keys("/")
    t.type("retrained")
    t.keys("Enter")
    t.wait(r"1/\d+ runs", timeout=max(10, timeout / 4))  # the filter applied: only the Retrained row
    time.sleep(0.3)
    t.keys("Enter")  # open the detail of the Retrained run
    t.wait(r"accuracy \(%\) per epoch", timeout=max(20, timeout / 4))
    first = int(t.wait(r"epoch (\d+)", timeout=timeout).group(1))
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(r"epoch (\d+)", t.screen())
        if m and int(m.group(1)) > max(first, 0) and int(m.group(1)) >= 2:
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"chart did not grow:\n{t.screen()}")
    assert "┤" in t.screen()  # the plot's axis is drawn
    t.keys("C-q")
    t.wait(r"queued or running|TUI-EXITED", timeout=20)
    if "queued or running" in t.screen():
        t.keys("c")  # cancel them
    t.wait(r"TUI-EXITED rc=0", timeout=60)


def test_launched_run_chart_grows_fake_engine(tmux_factory, tmp_path):
    t = tmux_factory(tmp_path / "ws", env={"TARF_ENGINE_CMD": shlex.join(FAKE_CMD),
                                           "TARF_FAKE_DELAY": "0.6", "TARF_FAKE_EPOCHS": "8"})
    _chart_grows(t, timeout=30)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_launched_run_chart_grows_real_engine(tmux_factory, tmp_path):
    t = tmux_factory(tmp_path / "ws", env={"TARF_HOME": str(tmp_path / "ws")})
    _chart_grows(t, timeout=400)
