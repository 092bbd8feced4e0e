"""Adding a method is its ``Params`` entry plus one implementation file, tested for free.

A throwaway method is added the README's way ("Adding a method") in a temporary package, and
the unchanged conformance suite (tests/test_methods.py) runs over it in a fresh pytest process
(its tests are parametrized when the module is collected, so the method must exist by then).
Also: ``engine.methods.impl`` fails loudly when the catalogue and the implementation files
disagree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.errors import CatalogueMismatch
from engine.methods import impl
from engine.methods.base import METHODS
from engine.methods.params import CATALOG

ROOT = Path(__file__).resolve().parent.parent

# the implementation file, exactly what a contributor writes as engine/methods/<name>.py
IMPLEMENTATION = '''
from engine.methods.base import EpochResult, Method, register


@register("throwaway")
class Throwaway(Method):
    """Fine-tune on D_un, with a second pass on D_f when ``twice``."""

    def setup(self):
        self.opt = self.ctx.sgd(self.p.lr, self.p.momentum, self.p.weight_decay)

    def epoch(self, e):
        loss = self.ctx.ce_pass(self.ctx.d_un, self.opt, clip=self.p.clip_grad)
        if self.p.order == "twice":
            self.ctx.ce_pass(self.ctx.d_f, self.opt, clip=self.p.clip_grad)
        return EpochResult(loss, extras={"order": self.p.order, "passes": self.p.passes})
'''

# the Params entry, what a contributor adds to engine/methods/params.py; registered as a pytest
# plugin so it exists before test_methods.py is collected, and removed again at the end
PLUGIN = '''
from dataclasses import dataclass
from pathlib import Path

import throwaway_pkg
from engine.methods.params import CATALOG, Common, _info, param

FILE = Path(throwaway_pkg.__file__).with_name("throwaway.py")


@_info("throwaway", "Throwaway", "test-only: fine-tune on D_un", module="throwaway_pkg.throwaway",
       code=(str(FILE),), dataset_defaults={"synthetic": {"lr": 0.02}})
@dataclass(frozen=True)
class ThrowawayParams(Common):
    epochs: int = 2  # passes (the base's min=1 still holds)
    order: str = param("once", choices=("once", "twice"))  # second pass on D_f or not
    passes: int = param(1, min=1)  # recorded only


def pytest_unconfigure(config):
    from engine.methods.base import METHODS

    CATALOG.remove("throwaway")
    if "throwaway" in METHODS:
        METHODS.remove("throwaway")
'''


def _write_plugin(tmp: Path) -> dict[str, str]:
    pkg = tmp / "throwaway_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "throwaway.py").write_text(textwrap.dedent(IMPLEMENTATION))
    (tmp / "throwaway_plugin.py").write_text(textwrap.dedent(PLUGIN))
    env = dict(os.environ, TARF_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tmp), str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _pytest(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "tests/test_methods.py", "-p", "throwaway_plugin",
                           "-p", "no:cacheprovider", "-q", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_throwaway_method_runs_the_whole_conformance_suite(tmp_path):
    env = _write_plugin(tmp_path)
    collected = _pytest(env, "--collect-only")
    assert collected.returncode == 0, collected.stdout[-3000:] + collected.stderr[-3000:]
    ids = [ln.strip() for ln in collected.stdout.splitlines() if "::" in ln]
    # every test of the suite that runs per method (has an "[ft..." case) has a throwaway case
    per_method = {i.split("::")[1].split("[")[0] for i in ids if re.search(r"\[ft(\]|-)", i)}
    assert len(per_method) >= 4, ids
    mine = [i for i in ids if "[throwaway" in i]
    assert {i.split("::")[1].split("[")[0] for i in mine} == per_method
    # its constrained fields (own and inherited) are each tried with a bad value
    assert {"throwaway-order", "throwaway-passes", "throwaway-epochs", "throwaway-lr"} <= \
        {i.split("[")[1].rstrip("]") for i in mine if "refuse" in i}
    ran = _pytest(env, "-rA", "-k", "throwaway or catalogue")
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-3000:]
    passed = {ln.split()[1] for ln in ran.stdout.splitlines() if ln.startswith("PASSED ")}
    assert set(mine) <= passed
    assert any("catalogue_and_implementations_match" in p for p in passed)


def test_a_throwaway_method_that_breaks_a_rule_fails_the_suite(tmp_path):
    """The suite is not a rubber stamp: the same method with a NaN loss fails it."""
    env = _write_plugin(tmp_path)
    f = tmp_path / "throwaway_pkg" / "throwaway.py"
    f.write_text(f.read_text().replace("return EpochResult(loss,", "return EpochResult(float('nan'),"))
    ran = _pytest(env, "-k", "throwaway and one_epoch")
    assert ran.returncode == 1, ran.stdout[-3000:]
    assert "1 failed" in ran.stdout


def test_a_catalogued_method_without_implementation_fails_loudly(tmp_path, monkeypatch):
    from dataclasses import dataclass

    from engine.methods.params import _info

    (tmp_path / "nothing_here.py").write_text("# registers no method\n")
    monkeypatch.syspath_prepend(str(tmp_path))

    @_info("orphan", "Orphan", "catalogued only", module="nothing_here", code=("nothing_here.py",))
    @dataclass(frozen=True)
    class OrphanParams:
        epochs: int = 1
        lr: float = 0.0

    try:
        with pytest.raises(CatalogueMismatch, match="'orphan'.*registers no implementation"):
            impl.load()
        CATALOG.remove("orphan")
        _info("orphan", "Orphan", "catalogued only", module="no_such_module_anywhere")(OrphanParams)
        with pytest.raises(CatalogueMismatch, match="no_such_module_anywhere does not exist"):
            impl.load()
    finally:
        CATALOG.remove("orphan")
    impl.load()  # the real catalogue agrees again
    assert "orphan" not in METHODS


def test_an_implementation_file_nobody_catalogued_fails_loudly(tmp_path):
    for name in ("base", "common", "ft", "tarf_i", "tarf"):
        (tmp_path / f"{name}.py").write_text("")
    assert impl.unclaimed_modules(tmp_path) == []
    (tmp_path / "newmethod.py").write_text("")
    assert impl.unclaimed_modules(tmp_path) == ["newmethod"]
    assert impl.unclaimed_modules() == []  # the real package
