"""The app never imports torch: importing the app module (and building its screens' modules) in
a fresh interpreter leaves ``torch`` out of ``sys.modules``."""

from __future__ import annotations

import subprocess
import sys

from tests.tui_support import ROOT


def test_app_import_does_not_load_torch():
    code = ("import sys\n"
            "import tarf_tui.app, tarf_tui.screens.builder, tarf_tui.screens.runs\n"
            "import tarf_tui.screens.detail, tarf_tui.screens.compare, tarf_tui.screens.dialogs\n"
            "import tarf_tui.widgets.charts, tarf_tui.widgets.params_form\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"torch modules loaded: {out.stdout.strip()}"
