"""Import boundaries, checked in fresh interpreters: the CLI and headless never load textual,
plotext or torch; the torch-free engine modules stay torch-free; the engine never loads
textual or plotext."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
UI = ("textual", "plotext", "textual_plotext")
HEAVY = ("torch", "torchvision")


def loaded_after(code: str) -> set[str]:
    """Top-level package names in sys.modules after running ``code`` in a new interpreter."""
    probe = (code + "\nimport sys, json\n"
             "print('MODULES=' + json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    p = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                       cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    assert p.returncode == 0, p.stderr
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("MODULES=")][-1]
    return set(json.loads(line.removeprefix("MODULES=")))


@pytest.mark.parametrize("module", ["tarf_tui.cli", "tarf_tui.headless", "tarf_tui.runs_cli",
                                    "tarf_tui.experiment", "tarf_tui.compare",
                                    "tarf_tui.launcher", "tarf_tui.planner", "tarf_tui.options",
                                    "tarf_tui.logs", "tarf_tui.cli_common",
                                    "tarf_tui.methods_info"])
def test_front_end_modules_load_no_ui_or_torch(module):
    mods = loaded_after(f"import {module}")
    assert not mods & set(UI + HEAVY), mods & set(UI + HEAVY)


def test_headless_help_loads_no_ui_or_torch():
    code = ("import sys\nfrom tarf_tui.cli import app\n"
            "sys.argv = ['tarf-tui', 'headless', '--help']\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert e.code in (0, None), e.code\n")
    mods = loaded_after(code)
    assert "typer" in mods  # the probe did run the command
    assert not mods & set(UI + HEAVY), mods & set(UI + HEAVY)


def test_headless_validation_loads_no_ui_or_torch():
    """Expanding and checking the default plan (what runs before any engine) stays light."""
    mods = loaded_after("from tarf_tui.experiment import expand\nexpand({'method': 'all'})")
    assert "numpy" in mods and not mods & set(UI + HEAVY)


@pytest.mark.parametrize("module", ["engine.spec", "engine.cases", "engine.hierarchy",
                                    "engine.task", "engine.store", "engine.datasets",
                                    "engine.methods.params", "engine.errors", "engine.registry"])
def test_torch_free_engine_modules(module):
    mods = loaded_after(f"import {module}")
    assert not mods & set(UI + HEAVY), mods & set(UI + HEAVY)


def _engine_modules() -> list[str]:
    out = []
    for p in sorted((ROOT / "engine").rglob("*.py")):
        rel = p.relative_to(ROOT).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts[-1] != "__main__":
            out.append(".".join(parts))
    return out


def test_engine_never_loads_textual_or_plotext():
    code = "import importlib\n" + "".join(
        f"importlib.import_module({m!r})\n" for m in _engine_modules())
    mods = loaded_after(code)
    assert "torch" in mods  # the engine proper was imported
    assert not mods & set(UI), mods & set(UI)


def test_no_module_imports_the_cli_shell():
    """``cli`` is the shell on top: nothing imports it back (issue 12: the lazy
    ``from .cli import fail`` closed an import circle)."""
    hits = [f"{p.relative_to(ROOT)}:{i}" for p in (ROOT / "tarf_tui").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1)
            if "from .cli import" in line
            or ("tarf_tui.cli" in line and "import" in line and p.name != "__main__.py")]
    assert hits == []


def test_workspace_option_and_engine_command_are_defined_once():
    src = {p.name: p.read_text() for p in (ROOT / "tarf_tui").rglob("*.py")}
    assert sum(s.count('"--workspace"') for s in src.values()) == 1, \
        [n for n, s in src.items() if '"--workspace"' in s]
    assert sum(s.count("os.environ.get(ENGINE_CMD_ENV") + s.count('environ.get("TARF_ENGINE_CMD"')
               for s in src.values()) == 1


def test_readme_is_self_contained():
    """The README works for anyone who clones the project elsewhere (issue 11 #10)."""
    text = (ROOT / "README.md").read_text()
    assert "../shared" not in text and "/work/" not in text
